#!/usr/bin/env bash
# Parley's media bridge (media.Bridge, bench/bridgeserver) beside LiveKit
# (livekit-server 1.13.11, built by bench/livekit/build.sh), each in its
# own process, under the same open-loop paced load, from its own process:
# one publisher's audio (50 packets/s of 100 bytes) and VP8 video (30
# frames/s of 3 packets of 1,000 bytes, a 15-packet keyframe every 2 s)
# to N subscribers, for N in SUBSCRIBERS (default 1 10 25 50), each load
# against LiveKit, then against ours (alternating), for DURATION each
# (default 10s). The generators are bench/mediaload (pion/webrtc v3
# clients, for ours) and bench/livekit/load (LiveKit's server-sdk-go,
# pion/webrtc v4): the same packets (bench/mediasynth), the same
# schedule, the same counting.
#
# Per server and N it prints: packets delivered per second to all the
# subscribers, loss (packets sent in the window that some subscriber did
# not receive, by the index each payload carries), the server's CPU per
# delivered (forwarded) packet: its utime+stime from /proc/PID/stat (every
# thread) over the window and the drain after it, divided by the packets
# delivered, and RSS per subscriber: (the largest VmRSS during the window
# - VmRSS idle, before the first load) / N.
#
# LiveKit: its own config (not --dev, which logs at debug level): an API
# key and secret, the signaling on 127.0.0.1, its media on one UDP port
# (rtc.udp_port: its UDP mux, as ours serves every participant on one
# port) on loopback only, no TURN, logging at warn; everything else its
# defaults (congestion control and its probes on). A port range instead
# (rtc.port_range_start/end, 1,000 ports) starved: each peer connection's
# ICE binds a port per candidate, scanning the range from its start, so
# with 50 subscribers (two peer connections each) and the sockets of the
# previous loads still closing, LiveKit spent most of its CPU in
# pion/ice's listenUDPInPortRange and lost up to 88 % of the packets. Ours: the bridge with the reference server's
# defaults (DTLS-SRTP, TWCC, its downlink estimator and pacer).
#
#   bash bench/bridge.sh
#   SUBSCRIBERS="10 50" DURATION=20s bash bench/bridge.sh
#   PROFILE=/tmp/bridge.pprof bash bench/bridge.sh   # our bridge's CPU profile, for go tool pprof
#   LIVEKIT_PROFILE=/tmp/lk.pprof bash bench/bridge.sh  # LiveKit's (its --cpuprofile)
#   FIRST=parley bash bench/bridge.sh                # ours first at each N (default: LiveKit first)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
SUBSCRIBERS=${SUBSCRIBERS:-1 10 25 50}
PROFILE=${PROFILE:-}
LIVEKIT_PROFILE=${LIVEKIT_PROFILE:-}
FIRST=${FIRST:-livekit}
case $FIRST in livekit | parley) ;; *) echo "FIRST=$FIRST: want livekit or parley" >&2; exit 2 ;; esac
lkbin=$(bash bench/livekit/build.sh | tail -1)
work=$(mktemp -d)
lk= ours=
cleanup() {
	for p in $lk $ours; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/bridgeserver" ./bench/bridgeserver
go build -o "$work/mediaload" ./bench/mediaload
(cd bench/livekit/load && go build -o "$work/lkload" .)

free_port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"; }
lkport=$(free_port SOCK_STREAM) lktcp=$(free_port SOCK_STREAM) lkudp=$(free_port SOCK_DGRAM)
ohttp=$(free_port SOCK_STREAM) omedia=$(free_port SOCK_DGRAM)
key=bench secret=bench-secret-0123456789-0123456789-0123456789
cat >"$work/livekit.yaml" <<YAML
port: $lkport
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: $lktcp
  udp_port: $lkudp
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
keys:
  $key: $secret
logging:
  level: warn
YAML
lkargs=(--config "$work/livekit.yaml")
[ -n "$LIVEKIT_PROFILE" ] && lkargs+=(--cpuprofile "$LIVEKIT_PROFILE")
"$lkbin" "${lkargs[@]}" >"$work/livekit.log" 2>&1 &
lk=$!
oargs=(-http "127.0.0.1:$ohttp" -media "127.0.0.1:$omedia")
[ -n "$PROFILE" ] && oargs+=(-cpuprofile "$PROFILE")
"$work/bridgeserver" "${oargs[@]}" >"$work/ours.log" 2>&1 &
ours=$!
for _ in $(seq 100); do
	curl -fs "http://127.0.0.1:$lkport/" >/dev/null 2>&1 && grep -q '^listening http' "$work/ours.log" 2>/dev/null && break
	sleep 0.1
done
curl -fs "http://127.0.0.1:$lkport/" >/dev/null || { cat "$work/livekit.log"; exit 1; }
grep -q '^listening http' "$work/ours.log" || { cat "$work/ours.log"; exit 1; }
sleep 1

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
lkidle=$(rss_kb "$lk") oidle=$(rss_kb "$ours")
echo "livekit: $("$lkbin" --version 2>&1 | tail -1), pid $lk, 127.0.0.1:$lkport, UDP $lkudp, idle RSS $((lkidle / 1024)) MB"
echo "ours:    bench/bridgeserver built with $(go version -m "$work/bridgeserver" | head -1 | awk '{print $2}'), pid $ours, 127.0.0.1:$ohttp, UDP $omedia, idle RSS $((oidle / 1024)) MB"
echo "load:    server-sdk-go $(cd bench/livekit/load && go list -m -f '{{.Version}}' github.com/livekit/server-sdk-go/v2) for LiveKit, pion/webrtc $(go list -m -f '{{.Version}}' github.com/pion/webrtc/v3) for ours; $DURATION per run"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo

echo '| server | subscribers | connected | sent | delivered packets/s | loss % | server CPU ms | server CPU µs per forwarded packet | RSS per subscriber | subscribers short / without video | padding received | generator CPU ms |'
echo '|---|---|---|---|---|---|---|---|---|---|---|---|'
# measure NAME PID IDLE_KB N: one load against one server; prints its row.
measure() {
	local name=$1 pid=$2 idle=$3 n=$4 out res
	if [ "$name" = livekit ]; then
		out=$("$work/lkload" -url "ws://127.0.0.1:$lkport" -api-key "$key" -api-secret "$secret" -room "bench-$n" \
			-subscribers "$n" -duration "$DURATION" -server-pid "$pid" 2>"$work/load.err") || { cat "$work/load.err" >&2; return 1; }
	else
		out=$("$work/mediaload" -server "http://127.0.0.1:$ohttp" -subscribers "$n" -duration "$DURATION" \
			-server-pid "$pid" 2>"$work/load.err") || { cat "$work/load.err" >&2; return 1; }
	fi
	res=$(grep '^RESULT' <<<"$out")
	local rss=$(field server_rss_kb "$res")
	printf '| %s | %d | %s | %s | %s | %s | %s | %s | %.2f MB | %s / %s | %s | %s |\n' "$name" "$n" "$(field connected "$res")" \
		"$(field sent "$res")" "$(field delivered_pps "$res")" "$(field loss_pct "$res")" "$(field server_cpu_ms "$res")" \
		"$(field server_cpu_us_per_pkt "$res")" "$(awk "BEGIN{print ($rss - $idle) / 1024 / $n}")" \
		"$(field short "$res")" "$(field novideo "$res")" "$(field padding "$res")" "$(field gen_cpu_ms "$res")"
}
for n in $SUBSCRIBERS; do
	if [ "$FIRST" = livekit ]; then
		measure livekit "$lk" "$lkidle" "$n"
		measure parley "$ours" "$oidle" "$n"
	else
		measure parley "$ours" "$oidle" "$n"
		measure livekit "$lk" "$lkidle" "$n"
	fi
done
echo
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
kill -TERM "$ours" && wait "$ours" 2>/dev/null || true
ours=
kill -INT "$lk" && wait "$lk" 2>/dev/null || true # LiveKit writes its profile on SIGINT
lk=
