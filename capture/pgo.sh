#!/usr/bin/env bash
# pgo.sh writes cmd/mqscope/default.pgo, the CPU profile `go build` uses for profile-guided
# optimisation of mqscope (inlining and devirtualising what the profile shows hot): profiles of
# `read --summary` and `read --format jsonl` on synthetic captures of 2,000,000 MQTT packets,
# one over 500 connections and one of a single connection (each core busy with another stage
# of it), merged. Run it again when the reading path changes a lot.
#
#   bash capture/pgo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -pgo=off -o "$work/mqscope" ./cmd/mqscope
go run ./capture/benchgen -o "$work/big.pcapng" -conns 500 -packets 2000000
go run ./capture/benchgen -o "$work/one.pcapng" -conns 1 -packets 2000000
for c in big one; do
  "$work/mqscope" read --summary --cpuprofile "$work/$c-summary.prof" "$work/$c.pcapng" >/dev/null
  "$work/mqscope" read --format jsonl --cpuprofile "$work/$c-jsonl.prof" "$work/$c.pcapng" >/dev/null
done
go tool pprof -proto "$work"/*.prof >cmd/mqscope/default.pgo
echo "wrote cmd/mqscope/default.pgo ($(wc -c <cmd/mqscope/default.pgo) bytes)"
