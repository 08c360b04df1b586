package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// weakNetns is a network namespace with a weak downlink: a veth pair
// from this host (hostIP) into the namespace (nsIP), whose traffic into
// the namespace crosses a token bucket of rate and loses loss percent of
// its UDP datagrams at random (nftables' numgen: this machine's kernel has
// tbf but no netem). Made by the test, removed when it ends.
type weakNetns struct {
	name, hostIP, nsIP string
}

// runTool runs a command, failing the test with its output.
func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newWeakNetns makes the namespace, or skips the test where it cannot be
// made here (not root, or no ip, tc or nft).
func newWeakNetns(t *testing.T, rate string, loss int) *weakNetns {
	t.Helper()
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed (iproute2, nftables); .ci/run installs them", tool)
			}
			t.Skipf("%s missing: apt-get install iproute2 nftables, and run as root", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	id := os.Getpid() % 100000
	// A /30 of its own per test process: 10.64.0.0/10 has room for all.
	net := fmt.Sprintf("10.%d.%d.", 64+(os.Getpid()/250)%64, os.Getpid()%250)
	n := &weakNetns{name: fmt.Sprintf("parley-weak-%d", id), hostIP: net + "1", nsIP: net + "2"}
	hostIf, nsIf := fmt.Sprintf("pwh%d", id), fmt.Sprintf("pwn%d", id)
	table := fmt.Sprintf("parley_weak_%d", id)
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("no network namespace here (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		_ = exec.Command("nft", "delete", "table", "inet", table).Run()
		_ = exec.Command("ip", "netns", "del", n.name).Run() // and the veth pair with it
	})
	runTool(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", n.name)
	runTool(t, "ip", "addr", "add", n.hostIP+"/30", "dev", hostIf)
	runTool(t, "ip", "link", "set", hostIf, "up")
	runTool(t, "ip", "-n", n.name, "addr", "add", n.nsIP+"/30", "dev", nsIf)
	runTool(t, "ip", "-n", n.name, "link", "set", nsIf, "up")
	runTool(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	// The downlink: a 300 kbit/s bucket whose queue holds 150 ms.
	runTool(t, "tc", "qdisc", "add", "dev", hostIf, "root", "tbf", "rate", rate, "burst", "4500", "latency", "150ms")
	runTool(t, "nft", "add", "table", "inet", table)
	runTool(t, "nft", "add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }")
	runTool(t, "nft", "add", "rule", "inet", table, "out", "ip", "daddr", n.nsIP, "meta", "l4proto", "udp",
		"numgen", "random", "mod", "100", "<", fmt.Sprint(loss), "drop")
	return n
}

// TestWebClientOnAWeakLink is issue 28's browser test: a Chromium
// organizer publishes her camera in simulcast; guest Gina watches from a
// Chromium on this host, guest Tom from a Chromium in a network namespace
// whose downlink is 300 kbit/s with 3 % of its UDP lost. Gina receives the
// organizer's full layer; Tom keeps decoding her video (at least 5 frames
// a second) at a lower resolution, and his audio keeps coming
// (e2e/weaklink.mjs).
//
// What it measures is timing: with other tests' browsers and builds on the
// same cores, the publisher's encoder and the estimator starve, and Tom's
// frame rate with them. So it runs alone, when PARLEY_WEAK_LINK is set.
// It is not in CI yet: about one run in six Tom's video stays paused (0
// frames a second). Once his estimate falls below what the low layer and
// the audio need, 3 % of random loss keeps the estimator from rising again
// (bwe_estimate.go rises only under 2 % loss), so the layer never resumes;
// the estimator has to tell random loss from congestion first (issue 28).
func TestWebClientOnAWeakLink(t *testing.T) {
	if os.Getenv("PARLEY_WEAK_LINK") == "" {
		t.Skip("timing-sensitive: run it alone with PARLEY_WEAK_LINK=1 (as root, with iproute2 and nftables)")
	}
	_, chromium := browserTools(t)
	ns := newWeakNetns(t, "300kbit", 3)
	// Tom's browser starts in the namespace.
	wrapper := filepath.Join(t.TempDir(), "chromium-weak")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec ip netns exec "+ns.name+" "+chromium+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The web page and the media bridge where the namespace reaches them.
	s := startServer(t, t.TempDir(), "-https", ns.hostIP+":0", "-media", ns.hostIP+":0")
	b := browserMeetingOn(t, s, `{"subject":"Weak link","access":"organization"}`)
	b.runScript(t, 4*time.Minute, nil, []string{"CHROMIUM_WEAK=" + wrapper}, "weaklink.mjs")
}
