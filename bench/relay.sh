#!/usr/bin/env bash
# Parley's TURN relay (edge.EdgeRelay, bench/relayserver) beside coturn
# (Debian's turnserver), each in its own process, under the same
# open-loop paced load from bench/relayload (its own process, with the
# UDP echo peers): 4 allocations, each with a channel to its peer, at
# 15,000 and 20,000 datagrams/s each of 160 bytes and 2,000/s each of
# 1,200 bytes, for DURATION (default 10s) each. Both servers run the
# whole time; each load runs against coturn, then against ours.
#
# A server's CPU is its utime+stime from /proc/PID/stat (every thread)
# read before and after a load; CPU per relayed packet is that divided by
# the datagrams it relayed in both directions: those the peers received
# (client to peer) plus the echoes the clients received (peer to client).
#
# coturn: no quota, loopback peers allowed, no CLI, no TLS or DTLS, one
# fixed user (-u, --lt-cred-mech) and realm, its default engine (one UDP
# relay thread per core) unless COTURN_THREADS sets --relay-threads.
# Ours: one UDP listener socket per core (SO_REUSEPORT; RELAY_SOCKETS
# sets how many), the same user and realm, loopback peers allowed, the
# bandwidth limit raised, every other guard on.
#
#   bash bench/relay.sh
#   SATURATE=1 bash bench/relay.sh                   # then raise the rate until loss > 1 % (SAT_STEP, SAT_DURATION)
#   PROFILE=/tmp/relay.pprof bash bench/relay.sh     # our relay's CPU profile, for go tool pprof
#   RELAY_GOMAXPROCS=1 bash bench/relay.sh           # our relay on one P (default: every core)
#   RELAY_SOCKETS=1 bash bench/relay.sh              # one listener socket (default: one per core)
#   LOADS="4 5000 160, 4 2000 1200" bash bench/relay.sh  # other loads: allocations, rate each, bytes
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
SATURATE=${SATURATE:-}
SAT_DURATION=${SAT_DURATION:-5s}
SAT_STEP=${SAT_STEP:-2500}
PROFILE=${PROFILE:-}
LOADS=${LOADS:-4 15000 160, 4 20000 160, 4 2000 1200}
COTURN_THREADS=${COTURN_THREADS:-}
command -v turnserver >/dev/null || { echo "turnserver is not installed (Debian: apt-get install coturn)" >&2; exit 1; }
work=$(mktemp -d)
coturn= ours=
cleanup() {
	for p in $coturn $ours; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/relayserver" ./bench/relayserver
go build -o "$work/relayload" ./bench/relayload

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cport=$(free_port) oport=$(free_port)
user=load password=bench-password realm=bench

cargs=(-n --no-tls --no-dtls --no-cli -L 127.0.0.1 --listening-port "$cport" --relay-ip 127.0.0.1
	--min-port 50000 --max-port 50999 --allow-loopback-peers --lt-cred-mech -u "$user:$password" -r "$realm"
	--pidfile "$work/turnserver.pid" --userdb "$work/turndb" --log-file stdout --simple-log)
[ -n "$COTURN_THREADS" ] && cargs+=(--relay-threads "$COTURN_THREADS")
turnserver "${cargs[@]}" >"$work/coturn.log" 2>&1 &
coturn=$!
oargs=(-listen "127.0.0.1:$oport" -realm "$realm" -user "$user" -password "$password" -sockets "${RELAY_SOCKETS:-$(nproc)}")
[ -n "$PROFILE" ] && oargs+=(-cpuprofile "$PROFILE")
GOMAXPROCS=${RELAY_GOMAXPROCS:-$(nproc)} "$work/relayserver" "${oargs[@]}" >"$work/ours.log" 2>&1 &
ours=$!
for _ in $(seq 100); do
	grep -q 'Total General servers' "$work/coturn.log" 2>/dev/null && grep -q '^listening udp' "$work/ours.log" 2>/dev/null && break
	sleep 0.1
done
grep -q 'Total General servers' "$work/coturn.log" || { cat "$work/coturn.log"; exit 1; }
grep -q '^listening udp' "$work/ours.log" || { cat "$work/ours.log"; exit 1; }
sleep 0.5 # coturn opens its database and auth threads after its servers

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "coturn: $(sed -n 's/^Version //p' "$work/coturn.log") (dpkg: $(dpkg-query -W -f '${Version}' coturn 2>/dev/null || echo '?')), pid $coturn, 127.0.0.1:$cport, $(grep -c 'turn server id=' "$work/coturn.log") relay threads"
echo "ours:   bench/relayserver built with $(go version -m "$work/relayserver" | head -1 | cut -f2), GOMAXPROCS=${RELAY_GOMAXPROCS:-$(nproc)}, $(sed -n 's/^listening udp .* sockets //p' "$work/ours.log") listener sockets, pid $ours, 127.0.0.1:$oport"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo

rows=()
# measure NAME PID PORT ALLOCATIONS RATE SIZE DURATION: one load against one
# server; prints its row and sets $loss.
measure() {
	local name=$1 pid=$2 port=$3 n=$4 rate=$5 size=$6 dur=$7
	local before after out
	before=$(cpu_ticks "$pid")
	out=$("$work/relayload" -server "127.0.0.1:$port" -realm "$realm" -user "$user" -password "$password" \
		-allocations "$n" -rate "$rate" -size "$size" -duration "$dur")
	after=$(cpu_ticks "$pid")
	local res
	res=$(grep '^RESULT' <<<"$out")
	local relayed=$(($(field to_peers "$res") + $(field echoes "$res")))
	local cpu_ms=$(((after - before) * 1000 / tck))
	loss=$(field loss_pct "$res")
	local row
	row=$(printf '| %s | %d × %d B at %d/s | %s | %s | %s | %.2f / %.2f ms | %d | %.2f | %s |' \
		"$name" "$n" "$size" "$rate" "$(field sent "$res")" "$(field rtps "$res")" "$loss" \
		"$(awk "BEGIN{print $(field p50_us "$res")/1000}")" "$(awk "BEGIN{print $(field p99_us "$res")/1000}")" \
		"$cpu_ms" "$(awk "BEGIN{print $relayed ? $cpu_ms*1000/$relayed : 0}")" "$(field gen_cpu_ms "$res")")
	rows+=("$row")
	echo "$row"
}

header='| relay | load (allocations × size at rate each) | sent | round trips/s | loss % | p50 / p99 RTT | server CPU ms | server CPU µs per relayed packet | generator CPU ms |'
echo "$header"
echo '|---|---|---|---|---|---|---|---|---|'
IFS=, read -ra loads <<<"$LOADS"
for load in "${loads[@]}"; do
	read -r n rate size <<<"$load"
	measure coturn "$coturn" "$cport" "$n" "$rate" "$size" "$DURATION"
	measure parley "$ours" "$oport" "$n" "$rate" "$size" "$DURATION"
done

if [ -n "$SATURATE" ]; then
	echo
	echo "saturation: 4 allocations of 160 bytes, the rate raised from $SAT_STEP/s each by $SAT_STEP/s until loss > 1 % (at most 60,000/s each)"
	echo "$header"
	echo '|---|---|---|---|---|---|---|---|---|'
	for srv in "coturn $coturn $cport" "parley $ours $oport"; do
		read -r name pid port <<<"$srv"
		for rate in $(seq "$SAT_STEP" "$SAT_STEP" 60000); do
			measure "$name" "$pid" "$port" 4 "$rate" 160 "$SAT_DURATION"
			awk "BEGIN{exit !($loss > 1)}" && break
		done
	done
fi
kill -TERM "$ours" && wait "$ours" 2>/dev/null || true
ours=
echo
tail -1 "$work/ours.log"
