#!/usr/bin/env bash
# bench.sh compares mqscope read with tshark on a large synthetic MQTT capture, from one run of
# each on the same file, and checks that mqscope's memory stays flat as the file grows:
#
#   bash capture/bench.sh [PACKETS] [CONNECTIONS]      # default 500000 MQTT packets, 500 connections
#
#   read --summary       vs  tshark -T fields -e mqtt.msgtype
#   read --format jsonl  vs  tshark -T json -j mqtt
#
# It prints wall-clock seconds, CPU seconds and peak resident memory (from GNU time) of each,
# the median of three runs taken alternately, and the ratio tshark / mqscope of the medians.
# Then it prints mqscope's peak memory for captures a fifth as large, as large, and five times
# as large, and its live heap (after the last garbage collection) for each, to show that
# memory follows the open connections, not the file. The captures come from capture/benchgen
# (MQTT 5 and 3.1.1 clients publishing QoS 0 and 1 to port 1883, several packets per segment
# now and then).
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-500000}
conns=${2:-500}
for tool in tshark go /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/mqscope" ./cmd/mqscope
go build -o "$work/benchgen" ./capture/benchgen
"$work/benchgen" -o "$work/big.pcapng" -conns "$conns" -packets "$packets"
"$work/benchgen" -o "$work/small.pcapng" -conns "$conns" -packets $((packets / 5))
"$work/benchgen" -o "$work/large.pcapng" -conns "$conns" -packets $((packets * 5))

# measure CMD...: run once, output to /dev/null; prints "wall cpu maxrss_kb".
measure() {
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" ||
    { cat "$work/stderr" >&2; exit 1; }
  awk '{printf "%.2f %.2f %d\n", $1, $2 + $3, $4}' "$work/time"
}

# median3 A B C: the middle one of three numbers.
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

size=$(du -m "$work/big.pcapng" | cut -f1)
frames=$(tshark -r "$work/big.pcapng" -T fields -e frame.number 2>/dev/null | tail -1)
echo "capture: ${size} MB, ${frames} TCP packets, about ${packets} MQTT packets, ${conns} connections"
echo "machine: $(nproc) CPUs, $(tshark -v 2>/dev/null | head -1), $(go version | cut -d' ' -f3)"
echo
printf '%-22s %9s %9s %9s   %-34s %9s %9s %9s   %7s %7s\n' \
  "mqscope" "wall s" "cpu s" "peak MB" "tshark" "wall s" "cpu s" "peak MB" "wall x" "cpu x"
row() { # LABEL_M LABEL_T -- MQSCOPE_ARGS -- TSHARK_ARGS
  local lm=$1 lt=$2
  shift 3
  local margs=() targs=()
  while [ "$1" != -- ]; do margs+=("$1"); shift; done
  shift
  targs=("$@")
  # Three runs of each, alternating, and the median of each column: the host's speed drifts
  # from minute to minute, and one run of each would measure the drift as much as the tools.
  local mw=() mc=() mm=() tw=() tc=() tm=()
  for _ in 1 2 3; do
    read -r a b c < <(measure "$work/mqscope" read "${margs[@]}" "$work/big.pcapng")
    mw+=("$a") mc+=("$b") mm+=("$c")
    read -r a b c < <(measure tshark -r "$work/big.pcapng" "${targs[@]}")
    tw+=("$a") tc+=("$b") tm+=("$c")
  done
  local w1 c1 m1 w2 c2 m2
  w1=$(median3 "${mw[@]}") c1=$(median3 "${mc[@]}") m1=$(median3 "${mm[@]}")
  w2=$(median3 "${tw[@]}") c2=$(median3 "${tc[@]}") m2=$(median3 "${tm[@]}")
  printf '%-22s %9s %9s %9d   %-34s %9s %9s %9d   %7.1f %7.1f\n' "$lm" "$w1" "$c1" $((m1 / 1024)) \
    "$lt" "$w2" "$c2" $((m2 / 1024)) "$(echo "$w2 / $w1" | bc -l)" "$(echo "$c2 / $c1" | bc -l)"
  echo "  runs: mqscope wall ${mw[*]} s; tshark wall ${tw[*]} s"
  last_tshark_mem=$m2
}
row "read --summary" "-T fields -e mqtt.msgtype" -- --summary -- -T fields -e mqtt.msgtype
tshark_big_mem=$last_tshark_mem
row "read --format jsonl" "-T json -j mqtt" -- --format jsonl -- -T json -j mqtt
echo
# liveheap FILE: the largest heap left after a garbage collection while reading FILE, in MB.
liveheap() {
  GODEBUG=gctrace=1 "$work/mqscope" read --summary "$1" 2>&1 >/dev/null |
    awk '/^gc /{split($11, h, "->"); if (h[3] + 0 > m) m = h[3] + 0} END {print m}'
}
read -r _ _ tsmall < <(measure tshark -r "$work/small.pcapng" -T fields -e mqtt.msgtype)
echo "peak memory of the summary as the capture grows from $((packets / 5)) to $packets to $((packets * 5)) MQTT packets:"
line="  mqscope"
for f in small big large; do
  read -r _ _ m < <(measure "$work/mqscope" read --summary "$work/$f.pcapng")
  line+=" $((m / 1024)) MB (live heap $(liveheap "$work/$f.pcapng") MB)"
done
echo "$line"
echo "  tshark  $((tsmall / 1024)) MB, $((tshark_big_mem / 1024)) MB (not run on the largest)"
