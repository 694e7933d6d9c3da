#!/usr/bin/env bash
# tlsbench.sh compares decrypting a TLS capture with mqscope and with tshark, from runs of
# each on the same file and key log:
#
#   bash capture/tlsbench.sh [PACKETS] [CONNECTIONS]   # default 300000 MQTT packets, 200 connections
#
#   read --summary --keylog K    vs  tshark -o tls.keylog_file:K -T fields -e mqtt.msgtype
#
# The capture comes from capture/benchgen -keylog (MQTT 5 and 3.1.1 clients over TLS 1.3,
# AES-128-GCM, port 8883). It prints wall-clock and CPU seconds (GNU time), the median of
# three runs taken alternately, the ratio tshark / mqscope of the medians, and the
# throughput in MB of capture per CPU second; and checks that both find the same number of
# MQTT packets.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-300000}
conns=${2:-200}
for tool in tshark go /usr/bin/time bc; do
  command -v "$tool" >/dev/null || { echo "tlsbench.sh: $tool is needed" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/mqscope" ./cmd/mqscope
go build -o "$work/benchgen" ./capture/benchgen
"$work/benchgen" -o "$work/tls.pcapng" -keylog "$work/keys.log" -conns "$conns" -packets "$packets"
cap="$work/tls.pcapng"
keys="$work/keys.log"

ours=$("$work/mqscope" read --format jsonl --keylog "$keys" "$cap" 2>/dev/null | grep -c '"kind":"packet"')
theirs=$(tshark -r "$cap" -o "tls.keylog_file:$keys" -Y mqtt -T fields -e mqtt.msgtype 2>/dev/null | tr ',' '\n' | grep -c .)
size=$(du -m "$cap" | cut -f1)
echo "capture: ${size} MB, ${conns} TLS 1.3 connections; MQTT packets decrypted: mqscope ${ours}, tshark ${theirs}"
[ "$ours" = "$theirs" ] || { echo "tlsbench.sh: mqscope and tshark disagree" >&2; exit 1; }
echo "machine: $(nproc) CPUs, $(tshark -v 2>/dev/null | head -1), $(go version | cut -d' ' -f3)"

measure() { # CMD...: prints "wall cpu"
  /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" ||
    { cat "$work/stderr" >&2; exit 1; }
  awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$work/time"
}
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

mw=() mc=() tw=() tc=()
for _ in 1 2 3; do
  read -r a b < <(measure "$work/mqscope" read --summary --keylog "$keys" "$cap")
  mw+=("$a") mc+=("$b")
  read -r a b < <(measure tshark -r "$cap" -o "tls.keylog_file:$keys" -T fields -e mqtt.msgtype)
  tw+=("$a") tc+=("$b")
done
w1=$(median3 "${mw[@]}") c1=$(median3 "${mc[@]}") w2=$(median3 "${tw[@]}") c2=$(median3 "${tc[@]}")
printf '%-10s %8s %8s %12s\n' "" "wall s" "cpu s" "MB per cpu s"
printf '%-10s %8s %8s %12.1f\n' mqscope "$w1" "$c1" "$(echo "$size / $c1" | bc -l)"
printf '%-10s %8s %8s %12.1f\n' tshark "$w2" "$c2" "$(echo "$size / $c2" | bc -l)"
printf 'tshark / mqscope: wall %.1fx, cpu %.1fx\n' "$(echo "$w2 / $w1" | bc -l)" "$(echo "$c2 / $c1" | bc -l)"
echo "runs: mqscope wall ${mw[*]} s; tshark wall ${tw[*]} s"
