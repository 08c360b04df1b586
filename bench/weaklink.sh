#!/usr/bin/env bash
# Issue 28's weak-link scenario (internal/netnspeer's
# TestWeakSubscriberInNetns) over a longer window, printing its figures:
# a publisher (three-layer VP8 simulcast of about 150, 300 and 550 kbit/s
# with camera-sized keyframes, and Opus) and three subscribers, each a
# pion process in a network namespace of its own joined to the bridge
# (in the test's process) by a veth pair; bob and carol unconstrained,
# dave behind 300 kbit/s each way losing 3 % of the UDP datagrams each
# way (tc tbf, nftables numgen). For each subscriber: frames decoded a
# second by layer, the resolution decoded, freezes (over 500 ms without a
# decoded frame) and the longest, audio packets and the longest gap, the
# layer the bridge sends and its downlink estimate; and the bridge
# process's CPU per packet the subscribers received. The same figures,
# with the same publisher and links, are what a LiveKit run is to be
# compared with.
#
# Root only, with iproute2 and nftables.
#
#   bash bench/weaklink.sh                 # 10 s warm-up, 60 s window, once
#   WINDOW=120s RUNS=3 bash bench/weaklink.sh
#   RACE=1 bash bench/weaklink.sh          # under the race detector
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${WARMUP:-10s}
WINDOW=${WINDOW:-60s}
RUNS=${RUNS:-1}
[ "$(id -u)" -eq 0 ] || { echo "network namespaces need root" >&2; exit 1; }
for tool in ip tc nft; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: apt-get install iproute2 nftables)" >&2; exit 1; }
done
race=()
[ -n "${RACE:-}" ] && race=(-race)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test "${race[@]}" -c -o "$work/netnspeer.test" ./internal/netnspeer
status=0
for run in $(seq 1 "$RUNS"); do
  echo "--- run $run: warm-up $WARMUP, window $WINDOW"
  if PARLEY_NETNS_WARMUP=$WARMUP PARLEY_NETNS_WINDOW=$WINDOW \
    "$work/netnspeer.test" -test.run '^TestWeakSubscriberInNetns$' -test.v -test.count=1 -test.timeout 30m >"$work/out" 2>&1; then
    result=PASS
  else
    result=FAIL status=1
  fi
  grep -E 'figures:|_test.go:[0-9]+: ' "$work/out" | sed -e 's/^ *[a-z_]*_test.go:[0-9]*: //' -e 's/^figures: //'
  echo "$result"
done
exit $status
