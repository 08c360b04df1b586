#!/usr/bin/env bash
# Sign-in storm against the reference server, each in its own process:
# CLIENTS clients (default 5000) offered at RATE per second (default
# 1000), each a new TLS connection, a REGISTER, the Digest challenge and
# the REGISTER with credentials, then kept open and idle; the server's
# resident memory and Go heap are read before and after. The server runs
# with -store memory (the sign-in path itself, without a disk write per
# REGISTER) and its connection caps and throttles raised for one source
# address.
#
#   bash bench/signinstorm.sh
#   CLIENTS=10000 RATE=2000 bash bench/signinstorm.sh
#   READBUF=4096 bash bench/signinstorm.sh   # limits.sip_read_buffer (default 16384)
#   SETTLE=150s bash bench/signinstorm.sh    # read memory after the runtime's periodic GC
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-5000}
RATE=${RATE:-1000}
work=$(mktemp -d)
srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/server" ./examples/server
go build -o "$work/signinstorm" ./bench/signinstorm
mkdir -m 700 "$work/data"
"$work/signinstorm" -directory "$work/data/directory.json" -clients "$CLIENTS"
cat > "$work/config.json" <<JSON
{"limits": {"max_conns_per_address": 100000, "max_conns": 100000, "sip_read_buffer": ${READBUF:-0},
  "throttle": {"per_address": {"rate": 1000000, "burst": 1000000}, "per_subnet": {"rate": 1000000, "burst": 1000000}}}}
JSON
args=(-data "$work/data" -store memory -config "$work/config.json" -log-level warn)
for l in http https sip-tls sip-wss edge edge-users turn turns media; do args+=("-$l" 127.0.0.1:0); done
"$work/server" "${args[@]}" >"$work/server.out" 2>"$work/server.err" &
srv=$!
for _ in $(seq 100); do grep -q '^listening media' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
sip=$(awk '$1=="listening" && $2=="sip-tls" {print $3}' "$work/server.out")
http=$(awk '$1=="listening" && $2=="http" {print $3}' "$work/server.out")
[ -n "$sip" ] || { cat "$work/server.err"; exit 1; }
echo "server $(go version -m "$work/server" | head -1 | cut -f2), pid $srv, SIP over TLS at $sip"
"$work/signinstorm" -addr "$sip" -ca "$work/data/ca/ca.crt" -clients "$CLIENTS" -rate "$RATE" -pid "$srv" -metrics "http://$http/metrics" ${SETTLE:+-settle $SETTLE}
awk '/^(utime|stime)/' /dev/null
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ utime stime _ < "/proc/$srv/stat"
echo "server CPU: $(( (utime + stime) * 1000 / $(getconf CLK_TCK) )) ms user+system in all, $(( (utime + stime) * 1000000 / $(getconf CLK_TCK) / CLIENTS )) µs per sign-in (start-up included)"
