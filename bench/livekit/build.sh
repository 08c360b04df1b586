#!/usr/bin/env bash
# Builds livekit-server v1.13.11 for bench/bridge.sh, as issue 22 says:
# the Go module proxy serves github.com/livekit/livekit-server v1.13.11
# but not the pion forks its go.mod replaces pion with, so `go install`
# refuses it. This downloads the module (go mod download -json), copies
# it to a writable cache directory, deletes the three `replace` lines of
# its go.mod, removes the two calls under `if params.EnableWarp` in
# pkg/rtc/transport.go (they need the fork) and builds ./cmd/server with
# GOFLAGS=-mod=mod. It does nothing when the binary is already built.
# It prints the binary's path on its last line.
#
#   bash bench/livekit/build.sh
#   LIVEKIT_DIR=/some/dir bash bench/livekit/build.sh
set -euo pipefail
version=v1.13.11
dir=${LIVEKIT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/parley-bench/livekit-${version#v}}
bin=$dir/livekit-server
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A throwaway module, so that the download does not touch any go.mod.
(cd "$tmp" && go mod init parley-bench-livekit-fetch >/dev/null 2>&1 &&
	go mod download -json "github.com/livekit/livekit-server@$version" >"$tmp/dl.json")
src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$tmp/dl.json")
[ -d "$src" ] || { echo "build.sh: go mod download gave no directory" >&2; cat "$tmp/dl.json" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
rm -rf "$dir.src"
cp -r "$src" "$dir.src"
chmod -R u+w "$dir.src"
cd "$dir.src"
# The three replace lines (pion forks the proxy does not serve).
n=$(grep -c '^replace ' go.mod || true)
[ "$n" = 3 ] || { echo "build.sh: expected 3 replace lines in go.mod, found $n" >&2; exit 1; }
sed -i '/^replace /d' go.mod
# The two calls under `if params.EnableWarp {` need the fork.
python3 - pkg/rtc/transport.go <<'PY'
import re, sys
path = sys.argv[1]
src = open(path).read()
m = re.search(r'(\n(\t+)if params\.EnableWarp \{\n)(.*?)(\n\2\})', src, re.S)
if not m:
    sys.exit("build.sh: no `if params.EnableWarp {` block in " + path)
body = m.group(3).split("\n")
# The two calls that need the fork: se.EnableSped and se.EnableSctpSnap
# (the block's log line stays).
calls = [l for l in body if re.match(r'\s*se\.Enable\w+\(', l)]
if len(calls) != 2:
    sys.exit("build.sh: expected 2 se.Enable... calls under `if params.EnableWarp`, found:\n" + m.group(3))
kept = "\n".join(l for l in body if l not in calls)
src = src[:m.start()] + m.group(1) + kept + m.group(4) + src[m.end():]
open(path, "w").write(src)
PY
GOFLAGS=-mod=mod go build -o "$dir.src/livekit-server" ./cmd/server
mkdir -p "$dir"
mv "$dir.src/livekit-server" "$bin"
echo "$bin"
