package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/netnstest"
)

// weakNetns is a network namespace with a weak downlink: joined to a
// switch on this host (hostIP) by a veth pair, its address nsIP, and the
// traffic into it crossing a token bucket of rate and losing loss
// percent of its UDP datagrams at random (internal/netnstest). Made by
// the test, removed when it ends.
type weakNetns struct {
	name, hostIP, nsIP string
}

// newWeakNetns makes the namespace, or skips the test where it cannot be
// made here (not root, or no ip, tc or nft).
func newWeakNetns(t *testing.T, rate string, loss int) *weakNetns {
	t.Helper()
	sw := netnstest.NewSwitch(t)
	ns := sw.Add(t, netnstest.Link{Down: netnstest.Shape{Rate: rate, Loss: loss}})
	return &weakNetns{name: ns.Name, hostIP: sw.IP, nsIP: ns.IP}
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
// It measures frame rates, so it runs only with PARLEY_WEAK_LINK=1: .ci/run
// runs it alone after the suite. (It left CI for a while: one run in six,
// Tom's video stayed paused, as the estimator read 3 % of random loss as
// congestion; bwe_estimate.go now tells them apart.)
func TestWebClientOnAWeakLink(t *testing.T) {
	if os.Getenv("PARLEY_WEAK_LINK") == "" {
		t.Skip("measures frame rates: run it alone with PARLEY_WEAK_LINK=1 (as root, with iproute2 and nftables), as .ci/run does")
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
