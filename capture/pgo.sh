#!/usr/bin/env bash
# pgo.sh writes cmd/mqscope/default.pgo, the CPU profile `go build` uses for profile-guided
# optimisation of mqscope (inlining and devirtualising what the profile shows hot): a profile of
# `read --summary` and one of `read --format jsonl` on a synthetic capture of 2,000,000 MQTT
# packets, merged. Run it again when the reading path changes a lot.
#
#   bash capture/pgo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -pgo=off -o "$work/mqscope" ./cmd/mqscope
go run ./capture/benchgen -o "$work/big.pcapng" -conns 500 -packets 2000000
"$work/mqscope" read --summary --cpuprofile "$work/summary.prof" "$work/big.pcapng" >/dev/null
"$work/mqscope" read --format jsonl --cpuprofile "$work/jsonl.prof" "$work/big.pcapng" >/dev/null
go tool pprof -proto "$work/summary.prof" "$work/jsonl.prof" >cmd/mqscope/default.pgo
echo "wrote cmd/mqscope/default.pgo ($(wc -c <cmd/mqscope/default.pgo) bytes)"
