// Package proxy is mqscope's man in the middle: it accepts MQTT connections from devices over
// TCP, TLS or WebSocket, opens one upstream connection to the broker for each (TCP, TLS,
// WebSocket, or an in-process broker), and forwards every byte unchanged, in order, as soon as it
// arrives.
//
// Each direction of a connection is one pipe: a goroutine reads into a fixed buffer, writes the
// same bytes to the other side, and then shows them to the connection's observers
// (stream.Observer: the inspect model, the pcapng recorder, the UI) before the buffer is reused.
// Observers see each connection as a stream.Conn and its end as a typed stream.End. Nothing is re-encoded and
// nothing is buffered beyond one read, so a slow side slows the other (backpressure) and memory
// per connection is bounded by the buffer size and the observers' own limits. Decode problems
// are findings for the observers; they never stop forwarding.
//
// A pipe tracks MQTT frame boundaries with a decode.Framer that keeps headers only, which is
// what lets the proxy inject a packet (DISCONNECT on shutdown, CONNACK when the broker cannot be
// reached) only between frames. Fault rules added later plug in as stages of a pipe, at frame
// level, with the clock and the random source taken from Config.
//
// Ends are passed on as a direct connection would see them: an EOF from one side half-closes
// the other (TCP FIN, TLS close_notify, WebSocket close frame), a reset or timeout resets the
// other side, and the close record says who ended first and how.
package proxy
