package edge

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/turn/v2"

	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

// certIs matches kp's certificate, as a revocation of its serial does.
func certIs(kp *pki.KeyPair) func(*x509.Certificate) bool {
	leaf := kp.Certificate().Leaf
	return func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(leaf.SerialNumber) == 0 && bytes.Equal(c.RawIssuer, leaf.RawIssuer)
	}
}

// TestRelayCloseCertificates: the TURN-over-TLS connection a revoked
// certificate opened is closed with its allocation; another user's stays
// and still relays.
func TestRelayCloseCertificates(t *testing.T) {
	p := testpki.New(t)
	tlsLn, err := tls.Listen("tcp4", "127.0.0.1:0", pki.ServerTLSConfig(p.Server(t, "relay.example.test"), p.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	e := newRelay(t, loopbackPeers, func(c *RelayConfig) { c.TCP = []net.Listener{tlsLn} })
	overTLS := func(user string, kp *pki.KeyPair) (net.Conn, net.PacketConn) {
		conn, err := tls.Dial("tcp4", tlsLn.Addr().String(), pki.ClientTLSConfig(kp, p.Verifier, "relay.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		cred := e.secrets.Issue(user, time.Hour)
		c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: tlsLn.Addr().String(), Conn: turn.NewSTUNConn(conn),
			Username: cred.Username, Password: cred.Password, Realm: "example.test", LoggerFactory: quietLoggers(), RTO: e.rto})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		relayed, err := c.Allocate()
		if err != nil {
			t.Fatalf("%s allocates over TLS: %v", user, err)
		}
		closeAtEnd(t, relayed)
		return conn, relayed
	}
	aliceKP, bobKP := p.User(t, "sip:alice@example.test"), p.User(t, "sip:bob@example.test")
	aliceConn, _ := overTLS("sip:alice@example.test", aliceKP)
	_, bobRelayed := overTLS("sip:bob@example.test", bobKP)
	if n := e.relay.Metrics().Allocations; n != 2 {
		t.Fatalf("%d allocations, want 2", n)
	}
	if n := e.relay.CloseCertificates(nil); n != 0 {
		t.Fatalf("CloseCertificates(nil) closed %d connections", n)
	}
	if n := e.relay.CloseCertificates(certIs(p.User(t, "sip:carol@example.test"))); n != 0 {
		t.Fatalf("CloseCertificates of a certificate no one used closed %d connections", n)
	}
	if n := e.relay.CloseCertificates(certIs(aliceKP)); n != 1 {
		t.Fatalf("CloseCertificates of alice's certificate closed %d connections, want 1", n)
	}
	_ = aliceConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := aliceConn.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("alice's connection after her certificate's revocation: read %v, want it closed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.relay.Metrics().Allocations != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d allocations after alice's connection closed, want bob's alone", e.relay.Metrics().Allocations)
		}
		time.Sleep(10 * time.Millisecond)
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := bobRelayed.WriteTo([]byte("bob still relays"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "bob still relays" {
		t.Fatalf("bob's allocation: %q %v", buf[:n], err)
	}
}

// TestAccessEdgeCloseCertificates: the partner connection a revoked
// certificate opened is closed at the edge; another partner's stays.
func TestAccessEdgeCloseCertificates(t *testing.T) {
	s := newSite(t)
	for _, d := range []string{"partner.test", "other.test"} {
		if err := s.federation.Allow(d); err != nil {
			t.Fatal(err)
		}
	}
	partnerKP, otherKP := s.pki.Peer(t, "partner.test"), s.pki.Peer(t, "other.test")
	options := func(p *peer, domain string) {
		req := p.request(sip.OPTIONS, "sip:example.test", "sip:ann@"+domain, "Ann")
		p.do(req, 5*time.Second) // any answer: the connection is up
	}
	options(s.peer(s.edge, "edge.example.test", partnerKP), "partner.test")
	options(s.peer(s.edge, "edge.example.test", otherKP), "other.test")
	partners := func() int {
		s.access.mu.Lock()
		defer s.access.mu.Unlock()
		return len(s.access.peers)
	}
	if n := partners(); n != 2 {
		t.Fatalf("%d partner connections, want 2", n)
	}
	if n := s.access.CloseCertificates(nil); n != 0 {
		t.Fatalf("CloseCertificates(nil) closed %d connections", n)
	}
	if n := s.access.CloseCertificates(certIs(partnerKP)); n != 1 {
		t.Fatalf("CloseCertificates of partner.test's certificate closed %d connections, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for partners() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d partner connections after partner.test's was closed, want other.test's alone", partners())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.access.CloseCertificates(certIs(partnerKP)); n != 0 {
		t.Fatalf("a second CloseCertificates closed %d connections", n)
	}
}

// TestAccessEdgeSetDomains: a domain added with SetDomains is served
// from the next request on, one removed is refused; a bad list changes
// nothing.
func TestAccessEdgeSetDomains(t *testing.T) {
	s := newSite(t)
	if err := s.federation.Allow("partner.test"); err != nil {
		t.Fatal(err)
	}
	partner := s.partner()
	message := func() int {
		req := partner.request(sip.MESSAGE, "sip:bob@acme.test", "sip:pat@partner.test", "")
		return partner.do(req, 5*time.Second).StatusCode
	}
	if code := message(); code != 404 {
		t.Fatalf("a MESSAGE for acme.test before it is served: %d, want 404", code)
	}
	if err := s.access.SetDomains([]string{"example.test", "ACME.test"}); err != nil {
		t.Fatal(err)
	}
	if code := message(); code == 404 {
		t.Fatal("a MESSAGE for acme.test once it is served: 404")
	}
	for _, bad := range [][]string{nil, {"example.test", " "}} {
		if err := s.access.SetDomains(bad); err == nil {
			t.Fatalf("SetDomains(%q) accepted", bad)
		}
	}
	if got := s.access.Domains(); len(got) != 2 || got[1] != "acme.test" {
		t.Fatalf("Domains after refused changes: %q", got)
	}
	if err := s.access.SetDomains([]string{"example.test"}); err != nil {
		t.Fatal(err)
	}
	if code := message(); code != 404 {
		t.Fatalf("a MESSAGE for acme.test once it is no longer served: %d, want 404", code)
	}
}
