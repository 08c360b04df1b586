#!/usr/bin/env bash
# Issue 28's weak-link scenario over a longer window, printing its
# figures, against Parley's bridge, LiveKit, or both in the same run: a
# publisher (three-layer VP8 simulcast of about 150, 300 and 550 kbit/s
# with camera-sized keyframes, and Opus) and three subscribers, each a
# process in a network namespace of its own joined to the server by a
# veth pair; bob and carol unconstrained, dave behind 300 kbit/s each way
# losing 3 % of the UDP datagrams each way (tc tbf, nftables numgen). The
# media are the same for both servers (internal/netnspeer/synth): the
# peers are pion/webrtc v3 processes for ours (internal/netnspeer's
# TestWeakSubscriberInNetns), LiveKit's Go SDK (pion/webrtc v4) for
# LiveKit's (bench/livekit/load's TestWeakSubscriberOnLiveKit).
#
# For each subscriber: frames decoded a second by layer, the resolution
# decoded, freezes (over 500 ms without a decoded frame) and the
# longest, video packets, audio packets and the longest gap; for ours
# also the layer the bridge sends and its downlink estimate when it runs
# in the test's process. For the server: its process's CPU (utime+stime
# from /proc) over the window per packet the subscribers received, and
# its RSS: idle, with the publisher alone, the largest over the window,
# and (largest - with the publisher) / 3 per subscriber.
#
# PEER=both (the default) runs LiveKit and ours alternately, RUNS times
# each (LiveKit first in odd runs, ours first in even ones). BRIDGE=process
# (the default) runs ours as bench/bridgeserver in a process of its own,
# as livekit-server runs; BRIDGE=test keeps it in the test's process (its
# CPU and RSS then include the test's relaying and sampling, and the
# layer it sends is sampled). LiveKit is livekit-server 1.13.11
# (bench/livekit/build.sh) with bench/bridge.sh's configuration (its
# defaults, congestion control on; media on one UDP port) on the
# switch's address, and its send-side downlink estimate
# (congestion_control.use_send_side_bwe: TWCC feedback, which its Go
# SDK's subscribers send); LIVEKIT_BWE=remb keeps its default, the
# subscriber's REMB, which pion subscribers do not send (LiveKit then
# has no estimate of the weak link).
#
# Root only, with iproute2 and nftables.
#
#   bash bench/weaklink.sh                      # both, 10 s warm-up, 60 s window, once each
#   WINDOW=60s RUNS=2 bash bench/weaklink.sh
#   PEER=parley BRIDGE=test bash bench/weaklink.sh
#   RACE=1 PEER=parley bash bench/weaklink.sh   # under the race detector
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${WARMUP:-10s}
WINDOW=${WINDOW:-60s}
RUNS=${RUNS:-1}
PEER=${PEER:-both}
BRIDGE=${BRIDGE:-process}
case $PEER in parley | livekit | both) ;; *) echo "PEER=$PEER: want parley, livekit or both" >&2; exit 2 ;; esac
case $BRIDGE in process | test) ;; *) echo "BRIDGE=$BRIDGE: want process or test" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "network namespaces need root" >&2; exit 1; }
for tool in ip tc nft; do
  command -v $tool >/dev/null || { echo "$tool is not installed (Debian: apt-get install iproute2 nftables)" >&2; exit 1; }
done
race=()
[ -n "${RACE:-}" ] && race=(-race)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$PEER" != livekit ]; then
  go test "${race[@]}" -c -o "$work/netnspeer.test" ./internal/netnspeer
  go build "${race[@]}" -o "$work/bridgeserver" ./bench/bridgeserver
fi
if [ "$PEER" != parley ]; then
  lkbin=$(bash bench/livekit/build.sh | tail -1)
  (cd bench/livekit/load && go test "${race[@]}" -c -o "$work/lkload.test" .)
  echo "livekit: $("$lkbin" --version 2>&1 | tail -1), server-sdk-go $(cd bench/livekit/load && go list -m -f '{{.Version}}' github.com/livekit/server-sdk-go/v2) peers"
fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; warm-up $WARMUP, window $WINDOW, bridge: $BRIDGE, LiveKit's estimate: ${LIVEKIT_BWE:-send-side}"
status=0
# one NAME: one run of the scenario against NAME; prints its figures.
one() {
  local name=$1 env=(PARLEY_WEAK_LINK=1 PARLEY_NETNS_WARMUP=$WARMUP PARLEY_NETNS_WINDOW=$WINDOW) cmd result
  if [ "$name" = livekit ]; then
    cmd=("$work/lkload.test" -test.run '^TestWeakSubscriberOnLiveKit$')
    env+=(LIVEKIT_SERVER=$lkbin PARLEY_LIVEKIT_BWE=${LIVEKIT_BWE:-send-side})
  else
    cmd=("$work/netnspeer.test" -test.run '^TestWeakSubscriberInNetns$')
    [ "$BRIDGE" = process ] && env+=(PARLEY_BRIDGESERVER=$work/bridgeserver)
  fi
  echo "--- $name, run $run (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if env "${env[@]}" "${cmd[@]}" -test.v -test.count=1 -test.timeout 30m >"$work/out" 2>&1; then
    result=PASS
  else
    result=FAIL status=1
  fi
  grep -E 'figures:|_test.go:[0-9]+: ' "$work/out" | sed -e 's/^ *[a-z_]*_test.go:[0-9]*: //' -e 's/^figures: //'
  echo "$result"
}
for run in $(seq 1 "$RUNS"); do
  case $PEER in
  both)
    if [ $((run % 2)) = 1 ]; then one livekit; one parley; else one parley; one livekit; fi
    ;;
  *) one "$PEER" ;;
  esac
done
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit $status
