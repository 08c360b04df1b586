package main

import (
	"bufio"
	"crypto/subtle"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/edge"
)

// A short smoke run of the generator (a few hundred datagrams): it must
// make its allocations, relay every datagram to its peers and back, and
// count them. The measurements themselves are bench/relay.sh's.

// smoke is a small load: 4 allocations × 100 datagrams, with a drain long
// enough for a busy machine.
func smoke(server, realm string) config {
	return config{server: server, realm: realm, user: "load", peerHost: "127.0.0.1", allocations: 4,
		rate: 200, size: 160, duration: 500 * time.Millisecond, tick: time.Millisecond, drain: 5 * time.Second}
}

func checkRun(t *testing.T, c config) {
	t.Helper()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	s, err := run(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.sent != 400 || s.toPeers != s.sent || s.echoes != s.sent || s.stray != 0 || s.loss() != 0 {
		t.Fatalf("sent %d, peers got %d, echoes %d, stray %d: want all 400 relayed both ways", s.sent, s.toPeers, s.echoes, s.stray)
	}
	if len(s.rtts) != 400 || s.percentile(0.5) <= 0 || s.percentile(1) > 10*time.Second {
		t.Fatalf("%d round trip times, p50 %v, max %v", len(s.rtts), s.percentile(0.5), s.percentile(1))
	}
}

// TestRelayLoadThroughEdgeRelay runs the generator against Parley's
// relay with a fixed user's long-term credential.
func TestRelayLoadThroughEdgeRelay(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := edge.LongTermKey("load", "bench", "pw")
	r, err := edge.NewEdgeRelay(edge.RelayConfig{Realm: "bench",
		AuthHandler: func(u, _ string, _ net.Addr) ([]byte, bool) {
			return key, subtle.ConstantTimeCompare([]byte(u), []byte("load")) == 1
		},
		UDP: []net.PacketConn{pc}, RelayAddress: net.IPv4(127, 0, 0, 1),
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := smoke(pc.LocalAddr().String(), "bench")
	c.password = "pw"
	checkRun(t, c)
	if m := r.Metrics(); m.Allocations != 0 || m.AllocationsTotal != 4 || m.BytesToPeers != 400*160 {
		t.Fatalf("relay metrics %+v: want 4 allocations made and released, 400 datagrams relayed to peers", m)
	}

	c.password = "wrong"
	if _, err := run(c); err == nil {
		t.Fatal("a wrong password got an allocation")
	}
}

// TestRelayLoadThroughCoturn runs the generator against coturn with TURN
// REST API credentials from a shared secret (-secret).
func TestRelayLoadThroughCoturn(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("turnserver (Debian coturn) is not installed")
		}
		t.Skip("turnserver is not installed (Debian: apt-get install coturn)")
	}
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	_ = probe.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "-n", "--no-tls", "--no-dtls", "--no-cli", "-L", "127.0.0.1", "--listening-port", strconv.Itoa(port),
		"--relay-ip", "127.0.0.1", "--min-port", "51000", "--max-port", "51999", "--allow-loopback-peers",
		"--use-auth-secret", "--static-auth-secret", "smoke-secret", "-r", "bench",
		"--pidfile", dir+"/pid", "--userdb", dir+"/db", "--log-file", "stdout", "--simple-log")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Total General servers") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("turnserver did not start in 10 s")
	}
	c := smoke("127.0.0.1:"+strconv.Itoa(port), "bench")
	c.secret = "smoke-secret"
	checkRun(t, c)
}
