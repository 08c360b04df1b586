package edge

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestCloseUserAndRevoke: CloseUser ends every allocation of a user,
// UDP and TCP, and no one else's; Revoke makes the credentials issued to
// the user before it fail, and those issued after it work.
func TestCloseUserAndRevoke(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	const alice, bob = "sip:alice@example.test", "sip:bob@example.test"
	aliceCred := e.secrets.Issue(alice, time.Hour)
	if _, err := allocate(t, e.client(aliceCred)); err != nil {
		t.Fatal(err)
	}
	aliceTCP, err := e.tcpClient(e.secrets.Issue(alice, time.Hour)).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer aliceTCP.Close()
	bobUDP, err := allocate(t, e.client(e.secrets.Issue(bob, time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if m := e.relay.Metrics(); m.Allocations != 3 {
		t.Fatalf("%d allocations, want 3", m.Allocations)
	}

	if n := e.relay.CloseUser(alice); n != 2 {
		t.Fatalf("CloseUser(alice) ended %d allocations, want 2", n)
	}
	aliceCounted := func() bool {
		e.relay.mu.Lock()
		defer e.relay.mu.Unlock()
		return e.relay.perUser[alice] != 0 || len(e.relay.owner) != 1
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.relay.Metrics().Allocations != 1 || aliceCounted() { // bob's alone, and alice's quota free
		if time.Now().After(deadline) {
			t.Fatalf("%d allocations after alice's were closed (alice still counted: %v), want bob's alone",
				e.relay.Metrics().Allocations, aliceCounted())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// bob's allocation still relays: a datagram to a peer goes out.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := bobUDP.WriteTo([]byte("still here"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("bob's allocation after alice's were closed: %q %v", buf[:n], err)
	}

	e.secrets.Revoke(alice)
	if _, _, err := e.secrets.Password(aliceCred.Username); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("alice's credential after Revoke: %v, want ErrCredentialRevoked", err)
	}
	e.rto = 20 * time.Millisecond
	if _, err := allocate(t, e.client(aliceCred)); err == nil {
		t.Fatal("an allocation with a credential issued before Revoke")
	}
	e.rto = 200 * time.Millisecond
	e.clock.advance(time.Millisecond)
	if _, err := allocate(t, e.client(e.secrets.Issue(alice, time.Hour))); err != nil {
		t.Fatalf("a credential issued after Revoke: %v", err)
	}
	if _, _, err := e.secrets.Password(e.secrets.Issue(bob, time.Hour).Username); err != nil {
		t.Fatalf("bob's credentials after alice's Revoke: %v", err)
	}
}

// An allocation ends when the credential it was made with expires,
// whatever refreshes it had: over UDP and over TCP.
func TestAllocationEndsWithItsCredential(t *testing.T) {
	e := newRelay(t)
	short := e.secrets.Issue("sip:alice@example.test", 2*time.Second)
	if _, err := allocate(t, e.client(short)); err != nil {
		t.Fatal(err)
	}
	tcpAlloc, err := e.tcpClient(e.secrets.Issue("sip:alice@example.test", 2*time.Second)).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, tcpAlloc)
	if _, err := allocate(t, e.client(e.secrets.Issue("sip:bob@example.test", time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := e.relay.Metrics().Allocations; n != 3 {
		t.Fatalf("%d allocations, want 3", n)
	}
	deadline := time.Now().Add(time.Until(short.Expires) + 2*time.Second)
	for e.relay.Metrics().Allocations != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d allocations a second after alice's credentials expired, want bob's alone", e.relay.Metrics().Allocations)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
