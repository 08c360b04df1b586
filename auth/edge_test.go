package auth

import (
	"crypto/x509"
	"testing"

	"github.com/parleyuc/parley/internal/testpki"
)

// TestEdgeAssertsFederatedUsers: over a connection whose certificate
// names a trusted Access Edge, P-Asserted-Identity says who a federated
// request is from; nowhere else does it count, and an edge cannot assert
// the tenant's own users.
func TestEdgeAssertsFederatedUsers(t *testing.T) {
	s := startSIPServer(t, Config{Edges: []string{"edge.example.test"}})
	edge := s.pki.Peer(t, "edge.example.test")
	c := s.dial(t, "", edge)
	pat := `P-Asserted-Identity: "Pat" <sip:pat@partner.test>`
	if res := c.do("MESSAGE", "sip:alice@example.test", "<sip:pat@partner.test>", pat); res.StatusCode != 200 {
		t.Fatalf("federated MESSAGE through the edge: %d", res.StatusCode)
	}
	id := s.lastServed()
	if id.Kind != Federated || id.Method != MethodFederation || id.URI != "sip:pat@partner.test" || id.Tenant != "partner.test" || id.DisplayName != "Pat" {
		t.Fatalf("identity %+v", id)
	}
	// The edge's connection carries many users: the next request is
	// judged by its own assertion, not the first one's.
	if res := c.do("MESSAGE", "sip:alice@example.test", "<sip:quinn@other.test>", `P-Asserted-Identity: <sip:quinn@other.test>`); res.StatusCode != 200 {
		t.Fatalf("second federated user on the edge's connection: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:quinn@other.test" {
		t.Fatalf("second identity %+v", id)
	}
	for name, tc := range map[string]struct{ from, pai string }{
		"asserting a tenant user":    {"<sip:alice@example.test>", "P-Asserted-Identity: <sip:alice@example.test>"},
		"From not the asserted user": {"<sip:pat@partner.test>", "P-Asserted-Identity: <sip:quinn@other.test>"},
		"not a SIP address":          {"<sip:pat@partner.test>", "P-Asserted-Identity: <tel:+15550100>"},
	} {
		var h []string
		if tc.pai != "" {
			h = append(h, tc.pai)
		}
		if res := c.do("MESSAGE", "sip:alice@example.test", tc.from, h...); res.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", name, res.StatusCode)
		}
	}
	// Another server's certificate, or none: the assertion is ignored and
	// the request must authenticate.
	other := s.dial(t, "", s.pki.Peer(t, "rogue.example.test"))
	if res := other.do("MESSAGE", "sip:alice@example.test", "<sip:pat@partner.test>", pat); res.StatusCode != 403 && res.StatusCode != 401 {
		t.Fatalf("assertion from an untrusted server: %d", res.StatusCode)
	}
	if res := s.dial(t, "", nil).do("MESSAGE", "sip:alice@example.test", "<sip:pat@partner.test>", pat); res.StatusCode != 401 {
		t.Fatalf("assertion without a certificate: %d, want 401", res.StatusCode)
	}
}

// TestEdgeMustComeFromTheEdgeCA: a certificate naming the edge, issued by
// another CA the server may trust (a partner's), is not the edge's.
func TestEdgeMustComeFromTheEdgeCA(t *testing.T) {
	s := startSIPServer(t, Config{Edges: []string{"edge.example.test"}})
	other := testpki.New(t).Peer(t, "edge.example.test")
	at := &attempt{peerCerts: []*x509.Certificate{other.Certificate().Leaf}}
	if s.authn.edgeOf(at) != "" {
		t.Fatal("an edge certificate from another CA is trusted")
	}
	own := s.pki.Peer(t, "edge.example.test")
	if s.authn.edgeOf(&attempt{peerCerts: []*x509.Certificate{own.Certificate().Leaf}}) == "" {
		t.Fatal("the edge's own certificate is not trusted")
	}
	if _, err := New(Config{Directory: NewMemoryDirectory(), Realm: "x.test", Edges: []string{"edge.x.test"}}); err == nil {
		t.Fatal("Edges without EdgeCA accepted")
	}
}

// TestEdgePassesRemoteUsersOn: a request over the edge's connection with
// no assertion is a remote user's (or a guest's) that the edge passed on:
// it authenticates itself, on every request (the connection carries many
// users, so it gets no security association), and a tenant user is Remote
// whatever address the edge has.
func TestEdgePassesRemoteUsersOn(t *testing.T) {
	s := startSIPServer(t, Config{Edges: []string{"edge.example.test"}})
	c := s.dial(t, "", s.pki.Peer(t, "edge.example.test"))
	if res := c.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("alice registers through the edge: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:alice@example.test" || id.Kind != Remote || id.Method != MethodDigest {
		t.Fatalf("through the edge from loopback, alice is %+v, want a remote user", id)
	}
	if res := c.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>"); res.StatusCode != 401 {
		t.Fatalf("the next request on the edge's connection without credentials: %d, want 401 (no association)", res.StatusCode)
	}
	if res := c.do("MESSAGE", "sip:bob@example.test", "<sip:bob@example.test>"); res.StatusCode != 401 {
		t.Fatalf("another user on the edge's connection: %d, want 401", res.StatusCode)
	}
	if n := s.authn.Associations(); n != 0 {
		t.Fatalf("%d security associations over the edge's connection", n)
	}
}
