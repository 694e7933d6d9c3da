-- ws-mqtt.lua: hand WebSocket messages whose negotiated subprotocol is "mqtt" to tshark's MQTT
-- dissector. tshark 4.0 (Debian 12) does not register MQTT in the ws.protocol table, so without
-- this mqtt-ws.pcapng shows the MQTT bytes as Data:
--   tshark -X lua_script:testdata/captures/ws-mqtt.lua -d tcp.port==18835,http \
--     -r testdata/captures/mqtt-ws.pcapng -Y mqtt
local ws = DissectorTable.get("ws.protocol")
if ws:get_dissector("mqtt") == nil then
  ws:add("mqtt", Dissector.get("mqtt"))
end
