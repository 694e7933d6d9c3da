#!/usr/bin/env bash
# gen.sh regenerates the MQTT captures in this directory from real peers: Debian's mosquitto
# broker, its mosquitto_pub / mosquitto_sub / mosquitto_rr clients, a raw client written in bash
# (for packets libmosquitto refuses to send) and ./wsclient (MQTT 5 over WebSocket).
#
#   bash testdata/captures/gen.sh              # every scenario
#   bash testdata/captures/gen.sh mqtt5-limits # only the named ones (file name without .pcapng)
#
# Needs root or dumpcap capabilities on lo, and mosquitto, mosquitto-clients, tshark, openssl, go.
# Everything talks over 127.0.0.1 only. Each scenario runs its own broker on its own port and
# captures that port on lo; ports.tsv records the port and the -d argument tshark needs to pick
# the dissector (e.g. `tshark -r mqtt5-session.pcapng -d tcp.port==18831,mqtt`; the WebSocket
# capture also needs `-X lua_script:ws-mqtt.lua`, see README.md).
# The script is idempotent: it overwrites the captures and ports.tsv and leaves nothing running
# or on disk besides them (KEEP_WORK=1 keeps its temporary directory, with the broker logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d /tmp/mqscope-captures.XXXXXX)
chmod 755 "$WORK" # the broker may drop privileges to the mosquitto user and must read its files

PIDS=() # every background process this script started and has not reaped yet

cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -INT "$pid" 2>/dev/null || true # SIGINT lets dumpcap finish its file
      sleep 0.2
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${KEEP_WORK:-}" ]; then echo "gen.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
  if [ "$rc" -ne 0 ]; then echo "gen.sh: failed (exit $rc)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'gen.sh: %s\n' "$*" >&2; exit 1; }

for tool in mosquitto mosquitto_pub mosquitto_sub mosquitto_rr mosquitto_passwd dumpcap tshark editcap \
  openssl go ss od; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

# ---------------------------------------------------------------------------------------------
# Processes

# start NAME CMD...: run CMD in the background, stdout+stderr to $WORK/NAME.out; sets LAST_PID.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

forget() { # forget PID: drop a reaped pid from PIDS
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# reap PID WANT_RC [TIMEOUT_S]: wait for a background process and check its exit status.
reap() {
  local pid=$1 want=$2 limit=${3:-20} i rc=0
  for ((i = 0; i < limit * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && die "process $pid still running after ${limit}s"
  wait "$pid" || rc=$?
  forget "$pid"
  [ "$rc" = "$want" ] || die "process $pid exited $rc, want $want"
}

# expect WANT_RC CMD...: run a client in the foreground, bounded by a timeout, check its status.
expect() {
  local want=$1 rc=0
  shift
  timeout 20 "$@" >>"$WORK/clients.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || die "exit $rc, want $want: $*"
}

# wait_log FILE REGEX [COUNT] [TIMEOUT_S]: wait until REGEX matches COUNT lines of FILE.
wait_log() {
  local file=$1 re=$2 count=${3:-1} limit=${4:-10} i n
  for ((i = 0; i < limit * 20; i++)); do
    n=$(grep -cE -- "$re" "$file" 2>/dev/null || true)
    [ "${n:-0}" -ge "$count" ] && return 0
    sleep 0.05
  done
  die "timed out waiting for $count x /$re/ in $file"
}

port_free() { [ -z "$(ss -Htln "sport = :$1")" ]; }

# pick_port PREFERRED: print PREFERRED if nothing listens on it, else a free port in 18830-18899.
pick_port() {
  local p
  if port_free "$1"; then echo "$1"; return; fi
  for ((p = 18830; p <= 18899; p++)); do
    if port_free "$p" && ! grep -qw "$p" "$WORK/used-ports" 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port in 18830-18899"
}

# broker_start NAME PORT: run mosquitto with $WORK/NAME.conf; BROKER_LOG is its log.
broker_start() {
  local name=$1 port=$2
  echo "$port" >>"$WORK/used-ports"
  BROKER_LOG="$WORK/$name.broker.out"
  start "$name.broker" mosquitto -c "$WORK/$name.conf"
  BROKER_PID=$LAST_PID
  wait_log "$BROKER_LOG" 'mosquitto version .* running'
  port_free "$port" && die "broker $name is not listening on $port"
  return 0
}

broker_stop() {
  kill -TERM "$BROKER_PID"
  reap "$BROKER_PID" 0
}

# The capture is fenced by two UDP datagrams to 127.0.0.1:MARK (MARK = the first captured port;
# nothing listens there). Seeing the first one in the file proves dumpcap is capturing; seeing
# the second proves it has written every earlier packet (on a loaded machine dumpcap can lag
# by more than a second, and SIGINT drops what it has not read yet). Both are cut out before
# the capture is committed.
mark_send() { printf 'mqscope-capture-mark' >"/dev/udp/127.0.0.1/$MARK"; }
mark_count() { tshark -r "$WORK/capture.pcapng" -Y "udp.port == $MARK" 2>/dev/null | wc -l; }
# mark_fence: send a mark and wait until it is in the capture file; resend every second in case
# dumpcap was not capturing yet.
mark_fence() {
  local before i
  before=$(mark_count)
  for ((i = 0; i < 150; i++)); do
    if ((i % 5 == 0)); then mark_send; fi
    sleep 0.2
    if [ "$(mark_count)" -gt "$before" ]; then return 0; fi
  done
  die "dumpcap: no mark reached the capture file in 30 s"
}

# capture_start PORT...: dumpcap on lo for these TCP ports into $WORK/capture.pcapng.
capture_start() {
  local filter="" p
  for p in "$@"; do filter+="tcp port $p or "; done
  MARK=$1
  rm -f "$WORK/capture.pcapng"
  start dumpcap dumpcap -i lo -f "${filter}udp port $MARK" -w "$WORK/capture.pcapng" -q
  DUMPCAP_PID=$LAST_PID
  wait_log "$WORK/dumpcap.out" "Capturing on"
  mark_fence
}

# capture_stop OUT PORT DECODE_AS: fence, stop dumpcap with SIGINT, drop the marks, move the file
# into place and record its port.
capture_stop() {
  local out=$1 port=$2 decode=$3 marks
  sleep 0.2 # the last FIN/ACKs
  mark_fence
  kill -INT "$DUMPCAP_PID"
  reap "$DUMPCAP_PID" 0
  marks=$(tshark -r "$WORK/capture.pcapng" -Y "udp.port == $MARK" -T fields -e frame.number \
    2>/dev/null | tr '\n' ' ')
  # shellcheck disable=SC2086 # one argument per frame number
  editcap "$WORK/capture.pcapng" "$WORK/$out" $marks
  chmod 644 "$WORK/$out"
  mv "$WORK/$out" "$HERE/$out"
  printf '%s\t%s\t%s\n' "$out" "$port" "$decode" >>"$WORK/ports.new"
  log "$out: $(stat -c %s "$HERE/$out") bytes"
}

# ---------------------------------------------------------------------------------------------
# A raw MQTT client over bash's /dev/tcp, for packets libmosquitto will not send (it enforces
# the limits a v5 CONNACK announces). Packets are built as hex strings.

hex_bytes() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
hex_str() { printf '%04x%s' "${#1}" "$(hex_bytes "$1")"; } # UTF-8 string, ASCII only here
hex_varint() {
  local n=$1 b out=""
  while :; do
    b=$((n % 128))
    n=$((n / 128))
    if [ "$n" -gt 0 ]; then b=$((b | 128)); fi
    out+=$(printf '%02x' "$b")
    if [ "$n" -eq 0 ]; then break; fi
  done
  printf '%s' "$out"
}
hex_packet() { printf '%s%s%s' "$1" "$(hex_varint $((${#2} / 2)))" "$2"; } # FIRST_BYTE BODY
hex_props() { printf '%s%s' "$(hex_varint $((${#1} / 2)))" "$1"; }        # PROPS -> with length

# v5_connect CLIENT_ID [PROPS]: clean start, keepalive 30.
v5_connect() { hex_packet 10 "$(hex_str MQTT)0502001e$(hex_props "${2:-}")$(hex_str "$1")"; }
# v5_publish FIRST_BYTE TOPIC PACKET_ID(hex, "" for QoS 0) PROPS PAYLOAD
v5_publish() { hex_packet "$1" "$(hex_str "$2")$3$(hex_props "$4")$(hex_bytes "$5")"; }

raw_open() { exec {RAW}<>"/dev/tcp/127.0.0.1/$1"; }
raw_close() { exec {RAW}>&-; }
raw_send() { printf "$(printf '%s' "$1" | sed 's/../\\x&/g')" >&"$RAW"; }
raw_bytes() { timeout "${2:-5}" dd bs=1 count="$1" status=none <&"$RAW" 2>/dev/null | od -An -v -tx1 | tr -d ' \n'; }
# raw_read [TIMEOUT_S]: print one whole packet from the broker as hex; empty on EOF or timeout.
raw_read() {
  local first b len=0 mul=1 head
  first=$(raw_bytes 1 "${1:-5}") || true
  [ -n "$first" ] || return 0
  head=$first
  while :; do
    b=$(raw_bytes 1)
    [ -n "$b" ] || die "raw client: connection ended inside a fixed header"
    head+=$b
    len=$((len + (16#$b & 127) * mul))
    mul=$((mul * 128))
    if [ $((16#$b & 128)) -eq 0 ]; then break; fi
  done
  if [ "$len" -gt 0 ]; then head+=$(raw_bytes "$len"); fi
  printf '%s' "$head"
}
# raw_expect PATTERN: read one packet and check its hex starts with PATTERN (a glob: ?? is any
# byte).
raw_expect() {
  local got
  got=$(raw_read)
  # shellcheck disable=SC2053
  [[ $got == $1* ]] || die "raw client: got '${got:-EOF}', want '$1...'"
}
raw_expect_eof() {
  local got
  got=$(raw_read)
  [ -z "$got" ] || die "raw client: got '$got', want EOF"
}

# Common client arguments.
v5() { echo -h 127.0.0.1 -p "$PORT" -V mqttv5; }
v311() { echo -h 127.0.0.1 -p "$PORT" -V mqttv311; }

broker_conf() { # NAME LINES...: write $WORK/NAME.conf with a plain listener on $PORT
  local name=$1
  shift
  {
    echo "listener $PORT 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence false"
    echo "log_dest stderr"
    echo "log_type all"
    printf '%s\n' "$@"
  } >"$WORK/$name.conf"
}

# ---------------------------------------------------------------------------------------------
# a. MQTT 5 session: properties, topic aliases, QoS 0/1/2, retain, wills, request/response.
scenario_mqtt5_session() {
  PORT=$(pick_port 18831)
  broker_conf a "max_topic_alias 4"
  broker_start a "$PORT"
  capture_start "$PORT"
  local L=$BROKER_LOG

  # 1. A retained QoS 1 status message, before anyone subscribes.
  expect 0 mosquitto_pub $(v5) -i mqscope-retainer -t mqscope/status -m online -r -q 1 \
    -D connect user-property tool gen.sh -D publish user-property kind retained

  # 2. The main subscriber: persistent session (expiry 300 s), receive maximum 8, maximum
  #    packet size 65536, topic alias maximum 5, user properties on CONNECT, SUBSCRIBE and
  #    UNSUBSCRIBE. It subscribes to two filters in one SUBSCRIBE at QoS 2, then unsubscribes
  #    from the second one, and exits with a normal DISCONNECT after 17 messages (counted below).
  start sub mosquitto_sub $(v5) -i mqscope-sub -c -x 300 -k 30 -q 2 -v -C 17 \
    -D connect receive-maximum 8 -D connect maximum-packet-size 65536 \
    -D connect topic-alias-maximum 5 -D connect user-property role subscriber \
    -D subscribe user-property purpose capture -D unsubscribe user-property purpose cleanup \
    -t 'mqscope/#' -t 'mqscope/scratch/+' -U 'mqscope/scratch/+'
  local sub=$LAST_PID
  wait_log "$L" 'Sending UNSUBACK to mqscope-sub'
  # -> 1 message: the retained mqscope/status (retain flag set).

  # 3. Topic aliases: the first PUBLISH carries topic + alias 1, the next three an empty topic
  #    and alias 1 only.
  printf 'reading 1\nreading 2\nreading 3\nreading 4\n' |
    expect 0 mosquitto_pub $(v5) -i mqscope-alias -t mqscope/sensor/temperature -l -q 1 \
      -D publish topic-alias 1 -D publish user-property unit C
  # -> 4 messages (5)

  # 4. QoS 0 (no client id: the broker assigns one in CONNACK), QoS 1, QoS 2.
  expect 0 mosquitto_pub $(v5) -t mqscope/qos/0 -m 'at most once' -q 0
  expect 0 mosquitto_pub $(v5) -i mqscope-q1 -t mqscope/qos/1 -m 'at least once' -q 1
  expect 0 mosquitto_pub $(v5) -i mqscope-q2 -t mqscope/qos/2 -m 'exactly once' -q 2 \
    -D publish user-property flow pubrec-pubrel-pubcomp
  # -> 3 messages (8)

  # 5. A JSON payload with payload-format-indicator 1, content-type and message expiry.
  expect 0 mosquitto_pub $(v5) -i mqscope-json -t mqscope/json -q 1 \
    -m '{"temp":21.5,"unit":"C","ok":true}' \
    -D publish payload-format-indicator 1 -D publish content-type application/json \
    -D publish message-expiry-interval 3600 -D publish user-property schema reading.v1
  # -> 1 message (9)

  # 6. Request/response: mosquitto_rr subscribes to its response topic, publishes the request
  #    with response-topic and correlation-data; a responder (mosquitto_sub -C 1 reading the
  #    two properties, then mosquitto_pub) answers with the same correlation data.
  start responder mosquitto_sub $(v5) -i mqscope-responder -t mqscope/rpc/request -C 1 -F '%R %D'
  local responder=$LAST_PID
  wait_log "$L" 'Sending SUBACK to mqscope-responder'
  start rr mosquitto_rr $(v5) -i mqscope-requester -t mqscope/rpc/request \
    -e mqscope/rpc/response/mqscope-requester -m '{"method":"ping"}' -W 10 \
    -D publish correlation-data req-0042 -D publish content-type application/json \
    -D publish payload-format-indicator 1
  local rr=$LAST_PID
  reap "$responder" 0
  local response_topic correlation
  read -r response_topic correlation <"$WORK/responder.out" || true
  [ "$correlation" = req-0042 ] || die "responder read correlation data '$correlation'"
  expect 0 mosquitto_pub $(v5) -i mqscope-responder-reply -t "$response_topic" -q 1 \
    -m '{"result":"pong"}' -D publish correlation-data "$correlation" \
    -D publish content-type application/json -D publish payload-format-indicator 1
  reap "$rr" 0
  # -> 2 messages: request and response (11)

  # 7. Wills.
  # 7a. Will with properties, not triggered: a clean DISCONNECT (reason 0) discards it.
  expect 0 mosquitto_pub $(v5) -i mqscope-will-clean -t mqscope/will/clean-status -m bye \
    --will-topic mqscope/will/clean --will-payload 'never published' --will-qos 1 \
    -D will will-delay-interval 5 -D will content-type text/plain \
    -D will message-expiry-interval 30
  # -> 1 message: clean-status (12)
  # 7b. Will with delay 1 s and session expiry 60 s, triggered by killing the client (no
  #     DISCONNECT, the kernel closes the socket): the broker publishes it about 1 s later.
  start will-kill mosquitto_sub $(v5) -i mqscope-will-kill -x 60 -t mqscope/will/ping -q 1 \
    --will-topic mqscope/will/kill --will-payload 'mqscope-will-kill vanished' --will-qos 1 \
    --will-retain -D will will-delay-interval 1 -D will content-type text/plain \
    -D will message-expiry-interval 120 -D will user-property reason sigkill
  local killed=$LAST_PID
  wait_log "$L" 'Sending SUBACK to mqscope-will-kill'
  log "killing mqscope-will-kill with SIGKILL (expected)"
  kill -KILL "$killed"
  reap "$killed" 137
  wait_log "$L" "Sending PUBLISH to mqscope-sub .*'mqscope/will/kill'"
  # -> 1 message: the delayed will (13)
  # 7c. mosquitto_sub -W (timeout) disconnects with reason 0x04 "Disconnect with Will Message":
  #     a clean DISCONNECT that still publishes the will (no delay).
  expect 27 mosquitto_sub $(v5) -i mqscope-will-rc4 -t mqscope/will/none -W 1 \
    --will-topic mqscope/will/rc4 --will-payload 'sent by DISCONNECT 0x04' \
    -D will payload-format-indicator 1 -D will content-type text/plain
  wait_log "$L" "Sending PUBLISH to mqscope-sub .*'mqscope/will/rc4'"
  # -> 1 message (14)

  # 8. A new subscriber gets the retained will; then the retained messages are cleared with
  #    zero-length retained publishes (delivered to mqscope-sub with an empty payload).
  expect 0 mosquitto_sub $(v5) -i mqscope-late -t mqscope/will/kill -C 1 -q 1
  expect 0 mosquitto_pub $(v5) -i mqscope-clear -t mqscope/will/kill -r -n -q 1
  expect 0 mosquitto_pub $(v5) -i mqscope-clear -t mqscope/status -r -n -q 1
  # -> 2 messages (16)

  # 9. A PUBLISH under the filter unsubscribed in step 2: it still matches mqscope/#, so
  #    mqscope-sub gets it once.
  expect 0 mosquitto_pub $(v5) -i mqscope-scratch -t mqscope/scratch/x -m scratch -q 1
  # -> 1 message (17): mqscope-sub disconnects with reason 0.
  reap "$sub" 0

  capture_stop mqtt5-session.pcapng "$PORT" "tcp.port==$PORT,mqtt"
  broker_stop
}

# ---------------------------------------------------------------------------------------------
# b. MQTT 3.1.1 session: username/password, QoS 0/1/2, retain, wills, persistent session,
#    keepalive pings, subscribe/unsubscribe.
scenario_mqtt311_session() {
  PORT=$(pick_port 18832)
  mosquitto_passwd -c -b "$WORK/b.passwd" mqscope s3cret >/dev/null
  chmod 644 "$WORK/b.passwd"
  broker_conf b "password_file $WORK/b.passwd"
  sed -i 's/^allow_anonymous true$/allow_anonymous false/' "$WORK/b.conf"
  broker_start b "$PORT"
  capture_start "$PORT"
  local L=$BROKER_LOG auth=(-u mqscope -P s3cret)

  # 1. Wrong password: CONNACK return code 5 (not authorized), the client exits 5.
  expect 5 mosquitto_pub $(v311) -i mqscope311-intruder -u mqscope -P wrong -t mqscope311/x -m x
  # 2. A retained QoS 1 message before anyone subscribes.
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -i mqscope311-retainer -t mqscope311/status \
    -m online -r -q 1

  # 3. The main subscriber: clean session, keepalive 30, two filters at QoS 2 in one SUBSCRIBE,
  #    then UNSUBSCRIBE of the second; exits with DISCONNECT after 9 messages.
  start sub mosquitto_sub $(v311) "${auth[@]}" -i mqscope311-sub -k 30 -q 2 -v -C 9 \
    -t 'mqscope311/#' -t 'mqscope311/scratch/+' -U 'mqscope311/scratch/+'
  local sub=$LAST_PID
  wait_log "$L" 'Sending UNSUBACK to mqscope311-sub'
  # -> 1 message: the retained status (1)
  # 3b. A client with a QoS 2 will and keepalive 5 s, killed in step 6.
  start will-kill mosquitto_sub $(v311) "${auth[@]}" -i mqscope311-will-kill -k 5 \
    -t mqscope311/will/ping --will-topic mqscope311/will/kill \
    --will-payload 'mqscope311-will-kill vanished' --will-qos 2
  local killed=$LAST_PID
  wait_log "$L" 'Sending SUBACK to mqscope311-will-kill'

  # 4. QoS 0, 1, 2 and an empty payload (random client ids "mosq-...").
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -t mqscope311/qos/0 -m 'at most once' -q 0
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -t mqscope311/qos/1 -m 'at least once' -q 1
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -t mqscope311/qos/2 -m 'exactly once' -q 2
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -i mqscope311-empty -t mqscope311/empty -n -q 1
  # -> 4 messages (5)

  # 5. Will not triggered: clean DISCONNECT discards it.
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -i mqscope311-will-clean \
    -t mqscope311/will/clean-status -m bye \
    --will-topic mqscope311/will/clean --will-payload 'never published' --will-qos 1
  # -> 1 message (6)
  # 6. Will triggered: the client started in step 3b idles until its 5 s keepalive makes it
  #    send PINGREQ; it is then killed without DISCONNECT and the broker publishes the will.
  wait_log "$L" 'Sending PINGRESP to mqscope311-will-kill'
  log "killing mqscope311-will-kill with SIGKILL (expected)"
  kill -KILL "$killed"
  reap "$killed" 137
  wait_log "$L" "Sending PUBLISH to mqscope311-sub .*'mqscope311/will/kill'"
  # -> 1 message (7)

  # 7. Persistent session (clean session 0): subscribe at QoS 1 and leave (-E); a QoS 1 message
  #    is queued while offline; reconnecting gets CONNACK session-present 1 and the message.
  expect 0 mosquitto_sub $(v311) "${auth[@]}" -i mqscope311-persist -c -q 1 \
    -t 'mqscope311/persist/#' -E
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -i mqscope311-persist-pub \
    -t mqscope311/persist/queued -m 'queued while offline' -q 1
  expect 0 mosquitto_sub $(v311) "${auth[@]}" -i mqscope311-persist -c -q 1 -C 1 -t 'mqscope311/persist/#'
  # -> 1 message to mqscope311-sub (8)

  # 8. Clear the retained message with a zero-length retained publish.
  expect 0 mosquitto_pub $(v311) "${auth[@]}" -i mqscope311-clear -t mqscope311/status -r -n -q 1
  # -> 1 message (9): mqscope311-sub disconnects.
  reap "$sub" 0

  capture_stop mqtt311-session.pcapng "$PORT" "tcp.port==$PORT,mqtt"
  broker_stop
}

# ---------------------------------------------------------------------------------------------
# c. Many concurrent connections, MQTT 5 and 3.1.1 mixed, overlapping in time.
scenario_mqtt_multi() {
  PORT=$(pick_port 18833)
  broker_conf c
  broker_start c "$PORT"
  capture_start "$PORT"
  local L=$BROKER_LOG

  # Three subscribers connect at once: v5 on mqscope/multi/# at QoS 2 (expects all 25
  # messages), v3.1.1 on mqscope/multi/+ at QoS 1 (25), v5 on p1 and p3 at QoS 0 (10).
  start sub-a mosquitto_sub $(v5) -i multi-sub-v5-all -q 2 -C 25 -t 'mqscope/multi/#'
  local a=$LAST_PID
  start sub-b mosquitto_sub $(v311) -i multi-sub-v311 -q 1 -C 25 -t 'mqscope/multi/+'
  local b=$LAST_PID
  start sub-c mosquitto_sub $(v5) -i multi-sub-v5-some -q 0 -C 10 -t mqscope/multi/p1 \
    -t mqscope/multi/p3 -D connect receive-maximum 2
  local c=$LAST_PID
  wait_log "$L" 'Sending SUBACK to multi-sub-' 3

  # Five publishers at once, 5 messages each, 0.1-0.2 s apart, so their exchanges interleave.
  start pub-1 mosquitto_pub $(v5) -i multi-pub-1-v5 -t mqscope/multi/p1 -m 'p1 v5 q0' -q 0 \
    --repeat 5 --repeat-delay 0.1
  local p1=$LAST_PID
  start pub-2 mosquitto_pub $(v311) -i multi-pub-2-v311 -t mqscope/multi/p2 -m 'p2 v311 q1' -q 1 \
    --repeat 5 --repeat-delay 0.15
  local p2=$LAST_PID
  start pub-3 mosquitto_pub $(v5) -i multi-pub-3-v5 -t mqscope/multi/p3 -m 'p3 v5 q2' -q 2 \
    --repeat 5 --repeat-delay 0.1 -D publish user-property publisher 3
  local p3=$LAST_PID
  start pub-4 mosquitto_pub $(v311) -i multi-pub-4-v311 -t mqscope/multi/p4 -m 'p4 v311 q2' \
    -q 2 --repeat 5 --repeat-delay 0.2
  local p4=$LAST_PID
  start pub-5 mosquitto_pub $(v5) -i multi-pub-5-v5 -t mqscope/multi/p5 -m '{"n":5}' -q 1 \
    --repeat 5 --repeat-delay 0.12 -D publish content-type application/json
  local p5=$LAST_PID
  local p
  for p in "$p1" "$p2" "$p3" "$p4" "$p5" "$a" "$b" "$c"; do reap "$p" 0; done

  capture_stop mqtt-multi.pcapng "$PORT" "tcp.port==$PORT,mqtt"
  broker_stop
}

# ---------------------------------------------------------------------------------------------
# d. Broker limits and how mosquitto enforces them. What each client does and what the broker
#    answers (checked here and in the capture with `tshark -Y mqtt -V`):
#
#    Every v5 CONNACK announces the limits: Topic Alias Maximum 2, Retain Available 0, Maximum
#    Packet Size 200, Receive Maximum 2 (from max_inflight_messages) and Maximum QoS 1.
#    1. mosquitto_sub v5 asks for QoS 2: SUBACK reason 0x01 (granted QoS 1).
#    2. mosquitto_pub v5, 250-byte payload: libmosquitto drops the PUBLISH itself (the packet
#       would exceed the announced 200 bytes); only CONNECT/CONNACK/DISCONNECT are on the wire,
#       and mosquitto_pub still exits 0.
#    3. mosquitto_pub v5 -q 2: libmosquitto refuses ("Message QoS not supported on broker"),
#       sends no PUBLISH, exits 0.
#    4. mosquitto_pub v5 -r: libmosquitto clears the retain flag and sends the PUBLISH anyway.
#    5. mosquitto_pub v5 with topic alias 3 (> 2): the broker sends DISCONNECT 0x94 Topic Alias
#       invalid and closes; the client still sends its own DISCONNECT, answered by RST.
#    6. mosquitto_pub v5 with --will-retain: CONNACK 0x9A Retain not supported; exit 154.
#    7. mosquitto_pub v5 with --will-qos 2: CONNACK 0x9B QoS not supported; exit 155.
#    8. mosquitto_pub v5 whose CONNECT (a 250-byte user property) exceeds 200 bytes: no CONNACK,
#       the broker resets the connection; exit 7 (connection lost).
#    Raw v5 clients (hand-built packets, see raw_* above), each CONNECT then one bad PUBLISH:
#    9.  QoS 0 PUBLISH of 250 bytes:           DISCONNECT 0x95 Packet too large, then RST.
#    10. QoS 2 PUBLISH:                          DISCONNECT 0x9B QoS not supported.
#    11. retained PUBLISH:                       DISCONNECT 0x9A Retain not supported.
#    12. PUBLISH with Topic Alias 0:             DISCONNECT 0x81 Malformed Packet (not 0x94).
#    13. empty topic + alias 2, never set:       DISCONNECT 0x82 Protocol Error.
#    MQTT 3.1.1 has no server DISCONNECT; mosquitto just closes the socket:
#    14. mosquitto_pub v3.1.1, 250-byte payload: PUBLISH sent, broker RST; exit 0.
#    15. mosquitto_pub v3.1.1 -q 2:              PUBLISH sent, broker FIN; exit 7.
#    16. mosquitto_pub v3.1.1 -r:                PUBLISH sent, broker closes, the client's
#                                                DISCONNECT is answered by RST; exit 0.
#    max_inflight_messages 2:
#    17. A raw v5 subscriber (no Receive Maximum of its own) and a raw v3.1.1 subscriber, both
#        at QoS 1, hold back their PUBACKs while mosquitto_pub sends 4 QoS 1 messages: each gets
#        exactly 2 PUBLISHes (ids 1, 2) and nothing more. Each then PUBACKs id 1 only, and
#        mosquitto 2.0.11 sends both ids 3 and 4 at once, so 3 messages are in flight (2, 3, 4):
#        freeing one slot releases the whole queue. Then PUBACK 2, 3, 4 and DISCONNECT.
scenario_mqtt5_limits() {
  PORT=$(pick_port 18834)
  broker_conf d "max_packet_size 200" "max_topic_alias 2" "max_qos 1" \
    "retain_available false" "max_inflight_messages 2"
  broker_start d "$PORT"
  capture_start "$PORT"
  local L=$BROKER_LOG big c
  big=$(printf 'x%.0s' {1..250})
  local connack='201200000f220002250027000000c82100022401' # the v5 CONNACK, limits included

  expect 0 mosquitto_sub $(v5) -i limits-v5-sub-q2 -q 2 -t mqscope/limits/sub -E        # 1
  expect 0 mosquitto_pub $(v5) -i limits-v5-big -t mqscope/limits/big -m "$big"         # 2
  expect 0 mosquitto_pub $(v5) -i limits-v5-q2 -t mqscope/limits/q2 -m q2 -q 2          # 3
  expect 0 mosquitto_pub $(v5) -i limits-v5-retain -t mqscope/limits/retain -m r -r     # 4
  expect 0 mosquitto_pub $(v5) -i limits-v5-alias -t mqscope/limits/alias -m a \
    -D publish topic-alias 3                                                            # 5
  expect 154 mosquitto_pub $(v5) -i limits-v5-will-retain -t mqscope/limits/x -m x \
    --will-topic mqscope/limits/will --will-retain                                      # 6
  expect 155 mosquitto_pub $(v5) -i limits-v5-will-q2 -t mqscope/limits/x -m x \
    --will-topic mqscope/limits/will --will-qos 2                                       # 7
  expect 7 mosquitto_pub $(v5) -i limits-v5-big-connect -t mqscope/limits/x -m x \
    -D connect user-property big "$big"                                                 # 8
  grep -q 'Topic Alias invalid\|Error: .*Retain\|QoS not supported' "$WORK/clients.out" ||
    die "limits: clients did not report the broker's refusals"

  # name:first byte:topic:packet id:properties:payload:expected DISCONNECT reason
  local name first topic pid props payload reason
  for c in big:30:mqscope/limits/raw-big:::$big:95 \
    q2:34:mqscope/limits/raw-q2:0001::q2:9b \
    retain:31:mqscope/limits/raw-retain:::r:9a \
    alias0:30:mqscope/limits/raw-alias0::230000:a0:81 \
    alias-unknown:30:::230002:unknown:82; do                                            # 9-13
    IFS=: read -r name first topic pid props payload reason <<<"$c"
    raw_open "$PORT"
    raw_send "$(v5_connect "limits-raw-$name")"
    raw_expect "$connack"
    raw_send "$(v5_publish "$first" "$topic" "$pid" "$props" "$payload")"
    raw_expect "e001$reason"
    raw_expect_eof
    raw_close
  done

  expect 0 mosquitto_pub $(v311) -i limits-v311-big -t mqscope/limits/big -m "$big"     # 14
  expect 7 mosquitto_pub $(v311) -i limits-v311-q2 -t mqscope/limits/q2 -m q2 -q 2      # 15
  expect 0 mosquitto_pub $(v311) -i limits-v311-retain -t mqscope/limits/retain -m r -r # 16

  # 17. max_inflight_messages.
  local r5 r311 fd i
  raw_open "$PORT"
  r5=$RAW
  raw_send "$(v5_connect limits-raw-inflight-v5)"
  raw_expect "$connack"
  raw_send "$(hex_packet 82 "0001$(hex_props "")$(hex_str mqscope/limits/inflight)01")"
  raw_expect 900400010001 # SUBACK, no properties, granted QoS 1
  raw_open "$PORT"
  r311=$RAW
  raw_send "$(hex_packet 10 "$(hex_str MQTT)0402001e$(hex_str limits-raw-inflight-v311)")"
  raw_expect 20020000
  raw_send "$(hex_packet 82 "0001$(hex_str mqscope/limits/inflight)01")"
  raw_expect 9003000101
  expect 0 mosquitto_pub $(v5) -i limits-inflight-pub -t mqscope/limits/inflight -m m -q 1 \
    --repeat 4
  local t
  t=$(hex_str mqscope/limits/inflight)
  for fd in "$r5" "$r311"; do
    RAW=$fd
    raw_expect "32??${t}0001" # PUBLISH QoS 1, packet id 1
    raw_expect "32??${t}0002" # PUBLISH QoS 1, packet id 2
    [ -z "$(raw_read 1)" ] || die "limits: a third in-flight PUBLISH arrived"
  done
  for fd in "$r5" "$r311"; do
    RAW=$fd
    raw_send "$(hex_packet 40 0001)" # PUBACK 1 (v5: reason 0 implied by the short form)
    raw_expect "32??${t}0003"
    raw_expect "32??${t}0004" # mosquitto 2.0.11 releases every queued message, not just one
    for i in 2 3 4; do raw_send "$(hex_packet 40 "000$i")"; done
    raw_send e000
    raw_expect_eof
    raw_close
  done

  capture_stop mqtt5-limits.pcapng "$PORT" "tcp.port==$PORT,mqtt"
  broker_stop
}

# ---------------------------------------------------------------------------------------------
# e. MQTT 5 over WebSocket: ./wsclient against a websockets listener (Debian builds mosquitto
#    with libwebsockets). mosquitto 2.0.11 refuses to start with only a websockets listener
#    ("Unable to start any listening sockets"), so a plain listener (not captured) comes first;
#    socket_domain ipv4 makes libwebsockets honour the 127.0.0.1 bind address.
scenario_mqtt_ws() {
  PORT=$(pick_port 18835)
  echo "$PORT" >>"$WORK/used-ports"
  local ws=$PORT
  PORT=$(pick_port 18845)
  broker_conf e "listener $ws 127.0.0.1" "protocol websockets" "socket_domain ipv4"
  broker_start e "$PORT"
  port_free "$ws" && die "websockets listener not up on $ws"
  (cd "$ROOT" && go build -o "$WORK/wsclient" ./testdata/captures/wsclient)
  capture_start "$ws"
  expect 0 "$WORK/wsclient" -url "ws://127.0.0.1:$ws/"
  capture_stop mqtt-ws.pcapng "$ws" "tcp.port==$ws,http"
  broker_stop
}

# ---------------------------------------------------------------------------------------------
# f. MQTT over TLS: a throwaway CA and server certificate (CN and SAN localhost, 127.0.0.1),
#    made here and deleted afterwards. mosquitto_pub connects with -h localhost, so the
#    ClientHello carries server_name "localhost": once with TLS 1.3 (default; the certificate is
#    encrypted) and ALPN "mqtt" for an MQTT 5 publisher, once with TLS 1.2 (the certificate is in
#    clear) for an MQTT 3.1.1 subscriber.
scenario_mqtt_tls() {
  PORT=$(pick_port 18836)
  local pki=$WORK/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=mqscope throwaway CA' \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' \
    -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$pki/san.ext"
  openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$pki/san.ext" -out "$pki/server.crt" 2>/dev/null
  chmod 755 "$pki"
  chmod 644 "$pki"/*
  broker_conf f "cafile $pki/ca.crt" "certfile $pki/server.crt" "keyfile $pki/server.key"
  broker_start f "$PORT"
  capture_start "$PORT"
  local tls=(-h localhost -p "$PORT" --cafile "$pki/ca.crt")
  # libmosquitto's --tls-version is a minimum; cap the subscriber at TLS 1.2 through OpenSSL's
  # configuration instead.
  printf '%s\n' 'openssl_conf = init' '[init]' 'ssl_conf = ssl' '[ssl]' 'system_default = tls12' \
    '[tls12]' 'MaxProtocol = TLSv1.2' >"$pki/tls12.cnf"
  start sub env OPENSSL_CONF="$pki/tls12.cnf" mosquitto_sub "${tls[@]}" -V mqttv311 \
    -i mqscope-tls-sub -t mqscope/tls -q 1 -C 1
  local sub=$LAST_PID
  wait_log "$BROKER_LOG" 'Sending SUBACK to mqscope-tls-sub'
  expect 0 mosquitto_pub "${tls[@]}" -V mqttv5 -i mqscope-tls-pub -t mqscope/tls -q 1 \
    -m 'encrypted hello' --tls-alpn mqtt
  reap "$sub" 0
  grep -q 'encrypted hello' "$WORK/sub.out" || die "tls: subscriber did not get the message"
  capture_stop mqtt-tls.pcapng "$PORT" "tcp.port==$PORT,tls"
  broker_stop
}

# ---------------------------------------------------------------------------------------------
ALL=(mqtt5-session mqtt311-session mqtt-multi mqtt5-limits mqtt-ws mqtt-tls)
if [ $# -eq 0 ]; then set -- "${ALL[@]}"; fi
for s in "$@"; do
  case " ${ALL[*]} " in *" $s "*) ;; *) die "unknown scenario $s (one of: ${ALL[*]})" ;; esac
done

: >"$WORK/ports.new"
for s in "$@"; do
  log "$s"
  : >"$WORK/clients.out"
  "scenario_${s//-/_}"
done

# Merge the ports of the scenarios just run into ports.tsv.
{
  [ -f "$HERE/ports.tsv" ] && grep -v -F -f <(cut -f1 "$WORK/ports.new") "$HERE/ports.tsv" | grep -v '^#' || true
  cat "$WORK/ports.new"
} | sort >"$WORK/ports.merged"
{
  printf '# capture\ttcp port\ttshark -d argument\n'
  cat "$WORK/ports.merged"
} >"$HERE/ports.tsv"

# Print what tshark decodes in each capture: MQTT packets per type (a frame may hold several).
NAMES=(- CONNECT CONNACK PUBLISH PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK UNSUBSCRIBE
  UNSUBACK PINGREQ PINGRESP DISCONNECT AUTH)
while IFS=$'\t' read -r file port decode; do
  case $file in '#'* | '') continue ;; esac
  [ -f "$HERE/$file" ] || continue
  if [[ $decode == *,tls ]]; then
    printf '%-24s TLS, ClientHello server_name: %s; records: %s\n' "$file" \
      "$(tshark -r "$HERE/$file" -d "$decode" -Y 'tls.handshake.type == 1' -T fields \
        -e tls.handshake.extensions_server_name 2>/dev/null | paste -sd, -)" \
      "$(tshark -r "$HERE/$file" -d "$decode" -Y tls -T fields -e tls.record.content_type \
        -e tls.record.opaque_type 2>/dev/null | tr ',\t' '\n\n' | grep . | sort -n | uniq -c |
        awk '{n[$2]=$1} END {printf "handshake %d, change_cipher_spec %d, alert %d, " \
          "application_data %d (TLS 1.3 opaque type included)", n[22], n[20], n[21], n[23]}')"
    continue
  fi
  counts=$(tshark -r "$HERE/$file" -X "lua_script:$HERE/ws-mqtt.lua" -d "$decode" -Y mqtt \
    -T fields -e mqtt.msgtype 2>/dev/null | tr ',' '\n' | sort -n | uniq -c |
    while read -r n t; do printf '%s %s, ' "${NAMES[$t]}" "$n"; done)
  printf '%-24s %s\n' "$file" "${counts%, }"
done <"$HERE/ports.tsv"
log "done"
