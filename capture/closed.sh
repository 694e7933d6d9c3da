#!/usr/bin/env bash
# closed.sh measures mqscope read --summary on a capture of many connections that open and
# close one after another, to show that memory follows the connections open, not those seen:
#
#   bash capture/closed.sh [CONNECTIONS] [PACKETS]     # default 100000 connections, 600000 packets
#
# It prints the peak resident memory and CPU time (GNU time) and fails when the peak is over
# 150 MB (the goal for 100,000 connections).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-100000}
packets=${2:-600000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/mqscope" ./cmd/mqscope
go run ./capture/benchgen -serial -o "$work/many.pcapng" -conns "$conns" -packets "$packets"
/usr/bin/time -f '%M %U %S' -o "$work/time" "$work/mqscope" read --summary "$work/many.pcapng" >"$work/out"
read -r rss user sys <"$work/time"
echo "read --summary, $conns connections opened and closed, $packets MQTT packets:" \
  "$(grep -c '^Connection ' "$work/out") summaries, peak $((rss / 1024)) MB, CPU $(echo "$user + $sys" | bc) s"
[ "$rss" -le $((150 * 1024)) ] || { echo "closed.sh: peak over 150 MB" >&2; exit 1; }
