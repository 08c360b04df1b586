package auth

import (
	"testing"

	"github.com/emiago/sipgo/sip"
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

// TestPoolPeerAssertsGuests: a pool front end passes on a meeting guest's
// requests (to the front end hosting the meeting) with the anonymous
// identity it gave the guest and, in PoolGuestHeader, the one meeting the
// guest's key opens: the guest may take part in that meeting (INVITE, a
// conference SUBSCRIBE) and nothing else, and a guest assertion without
// its meeting, or from a client, counts for nothing.
func TestPoolPeerAssertsGuests(t *testing.T) {
	const meeting = "yybcgrwdcpjkzwdqhb7c2jmzwu"
	s := startSIPServer(t, Config{Peers: []string{"pool.example.test"}})
	c := s.dial(t, "", s.pki.Peer(t, "pool.example.test"))
	guest := `P-Asserted-Identity: "Gina \"G\" Guest" <sip:anonymous-0a1b@anonymous.invalid>`
	if res := c.do("INVITE", "sip:"+meeting+"@example.test", "<sip:guest@anonymous.invalid>", guest,
		PoolGuestHeader+": "+meeting); res.StatusCode != 200 {
		t.Fatalf("a guest's INVITE to its meeting, passed on: %d", res.StatusCode)
	}
	id := s.lastServed()
	if id.URI != "sip:anonymous-0a1b@anonymous.invalid" || id.Kind != Anonymous || id.Method != MethodPool ||
		id.Meeting != meeting || id.DisplayName != "Gina G Guest" || id.Tenant != "" {
		t.Fatalf("identity %+v", id)
	}
	for name, tc := range map[string]struct{ method, ruri, guest string }{
		"another meeting":           {"INVITE", "sip:aaaaaaaaaaaaaaaaaaaaaaaaaa@example.test", meeting},
		"no meeting":                {"INVITE", "sip:" + meeting + "@example.test", ""},
		"a MESSAGE to a user":       {"MESSAGE", "sip:bob@example.test", meeting},
		"presence, not its meeting": {"SUBSCRIBE", "sip:bob@example.test", meeting},
	} {
		h := []string{guest}
		if tc.guest != "" {
			h = append(h, PoolGuestHeader+": "+tc.guest)
		}
		if res := c.do(tc.method, tc.ruri, "<sip:guest@anonymous.invalid>", h...); res.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", name, res.StatusCode)
		}
	}
	// From a client the headers count for nothing: it is challenged.
	client := s.dial(t, "", nil)
	if res := client.do("INVITE", "sip:"+meeting+"@example.test", "<sip:guest@anonymous.invalid>", guest,
		PoolGuestHeader+": "+meeting); res.StatusCode != 401 {
		t.Fatalf("a client asserting a guest: %d, want 401", res.StatusCode)
	}
}

// TestPoolPeerAssertsFederatedUsers: a pool front end passes on a partner's
// user (a federated participant joining a meeting hosted elsewhere) with
// PoolFederatedHeader; without it, or for a tenant's domain, the assertion
// is refused.
func TestPoolPeerAssertsFederatedUsers(t *testing.T) {
	s := startSIPServer(t, Config{Peers: []string{"pool.example.test"}})
	c := s.dial(t, "", s.pki.Peer(t, "pool.example.test"))
	if res := c.do("INVITE", "sip:yybcgrwdcpjkzwdqhb7c2jmzwu@example.test", "<sip:pat@partner.test>",
		`P-Asserted-Identity: "Pat" <sip:pat@partner.test>`, PoolFederatedHeader+": 1"); res.StatusCode != 200 {
		t.Fatalf("a partner's user, passed on: %d", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:pat@partner.test" || id.Kind != Federated || id.Method != MethodPool ||
		id.Tenant != "partner.test" || id.DisplayName != "Pat" {
		t.Fatalf("identity %+v", id)
	}
	if res := c.do("INVITE", "sip:yybcgrwdcpjkzwdqhb7c2jmzwu@example.test", "<sip:alice@example.test>",
		`P-Asserted-Identity: <sip:alice@example.test>`, PoolFederatedHeader+": 1"); res.StatusCode != 403 {
		t.Fatalf("a tenant's user asserted as a partner's: %d, want 403", res.StatusCode)
	}
}

// TestAssertIdentity: what a front end writes is what a peer reads back.
func TestAssertIdentity(t *testing.T) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "m", Host: "example.test"})
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:mallory@example.test>"))
	req.AppendHeader(sip.NewHeader(PoolGuestHeader, "forged"))
	AssertIdentity(req, &Identity{URI: "sip:anonymous-1@anonymous.invalid", DisplayName: "A \"B\"\\", Kind: Anonymous, Meeting: "m"}, true)
	if h := req.GetHeaders("P-Asserted-Identity"); len(h) != 1 || h[0].Value() != `"A B" <sip:anonymous-1@anonymous.invalid>` {
		t.Fatalf("P-Asserted-Identity %v", h)
	}
	if h := req.GetHeaders(PoolGuestHeader); len(h) != 1 || h[0].Value() != "m;dial-in" {
		t.Fatalf("%s %v", PoolGuestHeader, h)
	}
	if !PoolDialIn(req, &Identity{Kind: Anonymous, Method: MethodPool}) || PoolDialIn(req, &Identity{Kind: Anonymous, Method: MethodDigest}) {
		t.Fatal("PoolDialIn believes the header only from a pool front end")
	}
	AssertIdentity(req, &Identity{URI: "sip:pat@partner.test", Kind: Federated}, false)
	if req.GetHeader(PoolGuestHeader) != nil || req.GetHeader(PoolFederatedHeader) == nil {
		t.Fatalf("a partner's user's assertion: %v", req.Headers())
	}
	AssertIdentity(req, &Identity{URI: "sip:alice@example.test", Kind: Internal}, false)
	if req.GetHeader(PoolGuestHeader) != nil || req.GetHeader(PoolFederatedHeader) != nil ||
		req.GetHeader("P-Asserted-Identity").Value() != "<sip:alice@example.test>" {
		t.Fatalf("a user's assertion: %v", req.Headers())
	}
}
