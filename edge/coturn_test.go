package edge

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// coturnTool finds one of coturn's test programs (Debian package coturn).
func coturnTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (Debian coturn) is not installed", name)
		}
		t.Skipf("%s is not installed (Debian: apt-get install coturn)", name)
	}
	return path
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// TestCoturnClientRelaysThroughEdgeRelay: coturn's own test client
// allocates on the EdgeRelay with issued REST credentials and relays to
// coturn's test peer and back; with a password made from a wrong secret
// it gets no allocation; computing credentials from the right secret
// itself (-W), it asks for a day-long credential, which the relay refuses.
func TestCoturnClientRelaysThroughEdgeRelay(t *testing.T) {
	uclient, peerTool := coturnTool(t, "turnutils_uclient"), coturnTool(t, "turnutils_peer")
	const secret = "interop-shared-secret-0123456789"
	e := newRelay(t, func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	if err := e.secrets.SetSecret("k1", []byte(secret)); err != nil {
		t.Fatal(err)
	}

	peerPort := freeUDPPort(t)
	peer := exec.Command(peerTool, "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Process.Kill(); _ = peer.Wait() })

	_, relayPort, _ := net.SplitHostPort(e.udp)
	run := func(timeout time.Duration, credentials ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		args := append([]string{"-p", relayPort, "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-n", "20", "-l", "200", "-c", "-X"},
			credentials...)
		cmd := exec.CommandContext(ctx, uclient, append(args, "127.0.0.1")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	cred := e.secrets.Issue("alice@example.test", time.Hour)
	out, err := run(30*time.Second, "-u", cred.Username, "-w", cred.Password)
	if err != nil {
		t.Fatalf("turnutils_uclient: %v\n%s", err, out)
	}
	lost := regexp.MustCompile(`Total lost packets ([0-9]+) \(`).FindStringSubmatch(out)
	if lost == nil || lost[1] != "0" {
		t.Fatalf("with issued credentials, packets lost:\n%s", out)
	}
	if mt := e.relay.Metrics(); mt.AllocationsTotal == 0 || mt.BytesToPeers < 20*200 || mt.BytesFromPeers < 20*200 {
		t.Fatalf("relay metrics %+v\n%s", mt, out)
	}

	for name, creds := range map[string][]string{
		"a password from a wrong secret": {"-u", cred.Username, "-w", password([]byte("not-the-secret-0123456789abcdef"), cred.Username)},
		"a day-long credential (-W)":     {"-W", secret, "-u", "alice@example.test"},
	} {
		before := e.relay.Metrics()
		out, _ := run(3*time.Second, creds...) // refused requests are dropped: it would retry for long
		after := e.relay.Metrics()
		if after.AllocationsTotal != before.AllocationsTotal || after.BytesToPeers != before.BytesToPeers {
			t.Errorf("%s: the client got an allocation: %+v\n%s", name, after, out)
		}
		if after.AuthFailures == before.AuthFailures {
			t.Errorf("%s: refusal not counted: %+v", name, after)
		}
	}
}

// TestCoturnClientRelaysOverTCPAllocations: coturn's test client in its
// RFC 6062 mode (-T: TCP relays, two clients connected to each other
// through their relayed addresses with Connect, ConnectionAttempt and
// ConnectionBind) exchanges its messages through the EdgeRelay.
func TestCoturnClientRelaysOverTCPAllocations(t *testing.T) {
	uclient := coturnTool(t, "turnutils_uclient")
	e := newRelay(t, func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	_, port, _ := net.SplitHostPort(e.tcp)
	cred := e.secrets.Issue("alice@example.test", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, uclient, "-T", "-p", port, "-n", "20", "-l", "200", "-X",
		"-u", cred.Username, "-w", cred.Password, "127.0.0.1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("turnutils_uclient -T: %v\n%s", err, out.String())
	}
	lost := regexp.MustCompile(`Total lost packets ([0-9]+) \(`).FindStringSubmatch(out.String())
	if lost == nil || lost[1] != "0" {
		t.Fatalf("packets lost:\n%s", out.String())
	}
	if mt := e.relay.Metrics(); mt.AllocationsTotal < 2 || mt.BytesToPeers < 20*200 || mt.BytesFromPeers < 20*200 {
		t.Fatalf("relay metrics %+v", mt)
	}
}
