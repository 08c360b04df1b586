package auth

import (
	"testing"
)

// TestPoolPeerAssertsTenantUsers: over a connection whose certificate
// names a front end of the pool, P-Asserted-Identity says which of the
// tenant's users a request comes from (one request at a time, many users
// per connection); an unknown or disabled user, or no assertion, is
// refused, and another server's assertion counts for nothing.
func TestPoolPeerAssertsTenantUsers(t *testing.T) {
	s := startSIPServer(t, Config{Peers: []string{"pool.example.test"}})
	c := s.dial(t, "", s.pki.Peer(t, "pool.example.test"))
	if res := c.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>", `P-Asserted-Identity: <sip:alice@example.test>`); res.StatusCode != 200 {
		t.Fatalf("MESSAGE passed on by a pool front end: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:alice@example.test" || id.Method != MethodPool || id.Tenant != "example.test" {
		t.Fatalf("identity %+v", id)
	}
	if res := c.do("MESSAGE", "sip:alice@example.test", "<sip:bob@example.test>", `P-Asserted-Identity: <sip:bob@example.test>`); res.StatusCode != 200 {
		t.Fatalf("second user on the front end's connection: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:bob@example.test" {
		t.Fatalf("second identity %+v: the first request's association stuck", id)
	}
	for name, tc := range map[string]struct{ from, pai string }{
		"no assertion":             {"<sip:alice@example.test>", ""},
		"an unknown user":          {"<sip:mallory@example.test>", "P-Asserted-Identity: <sip:mallory@example.test>"},
		"a disabled user":          {"<sip:carol@example.test>", "P-Asserted-Identity: <sip:carol@example.test>"},
		"From not the asserted":    {"<sip:bob@example.test>", "P-Asserted-Identity: <sip:alice@example.test>"},
		"a federated user":         {"<sip:pat@partner.test>", "P-Asserted-Identity: <sip:pat@partner.test>"},
		"not a usable SIP address": {"<sip:alice@example.test>", "P-Asserted-Identity: <tel:+15550100>"},
	} {
		var h []string
		if tc.pai != "" {
			h = append(h, tc.pai)
		}
		if res := c.do("MESSAGE", "sip:bob@example.test", tc.from, h...); res.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", name, res.StatusCode)
		}
	}
	// An Access Edge is not a front end: it may not assert tenant users.
	s2 := startSIPServer(t, Config{Peers: []string{"pool.example.test"}, Edges: []string{"edge.example.test"}})
	edge := s2.dial(t, "", s2.pki.Peer(t, "edge.example.test"))
	if res := edge.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>", `P-Asserted-Identity: <sip:alice@example.test>`); res.StatusCode != 403 {
		t.Fatalf("the edge asserting a tenant user: %d, want 403", res.StatusCode)
	}
	rogue := s.dial(t, "", s.pki.Peer(t, "rogue.example.test"))
	if res := rogue.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>", `P-Asserted-Identity: <sip:alice@example.test>`); res.StatusCode != 401 && res.StatusCode != 403 {
		t.Fatalf("assertion from a server outside the pool: %d", res.StatusCode)
	}
	if _, err := New(Config{Directory: NewMemoryDirectory(), Realm: "x.test", Peers: []string{"pool.x.test"}}); err == nil {
		t.Fatal("Peers without EdgeCA accepted")
	}
}
