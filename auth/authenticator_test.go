package auth

import (
	"crypto/fips140"
	"crypto/x509"
	"strconv"
	"strings"
	"testing"
	"time"
)

// All tests here speak SIP over real TLS connections on loopback to a
// sipgo server whose handlers require authentication.

func TestChallengeOffersSHA256ThenMD5(t *testing.T) {
	s := startSIPServer(t, Config{})
	res := s.dial(t, "", nil).do("OPTIONS", "sip:example.test", "<sip:alice@example.test>")
	if res.StatusCode != 401 {
		t.Fatalf("unauthenticated OPTIONS: %d, want 401", res.StatusCode)
	}
	cs := challenges(res)
	if fips140.Enabled() {
		// MD5 is not FIPS-approved: in FIPS mode only SHA-256 is offered.
		if len(cs) != 1 || !strings.Contains(cs[0], "algorithm=SHA-256") {
			t.Fatalf("challenges %q in FIPS mode, want Digest SHA-256 only", cs)
		}
	} else if len(cs) != 2 || !strings.Contains(cs[0], "algorithm=SHA-256") || !strings.Contains(cs[1], "algorithm=MD5") {
		t.Fatalf("challenges %q, want Digest SHA-256 then MD5", cs)
	}
	for _, c := range cs {
		if !strings.Contains(c, `realm="example.test"`) || !strings.Contains(c, `qop="auth"`) {
			t.Fatalf("challenge %q lacks the tenant realm or qop", c)
		}
	}
}

func TestProxyChallengesWith407(t *testing.T) {
	s := startSIPServer(t, Config{Proxy: true})
	c := s.dial(t, "", nil)
	res := c.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>")
	if res.StatusCode != 407 || len(res.GetHeaders("Proxy-Authenticate")) == 0 {
		t.Fatalf("proxy challenge: %d %v", res.StatusCode, challenges(res))
	}
	creds := digestFor(t, res, algSHA256, "MESSAGE", "sip:bob@example.test", "alice", alicePassword, 1)
	creds = strings.Replace(creds, "Authorization:", "Proxy-Authorization:", 1)
	if res := c.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>", creds); res.StatusCode != 200 {
		t.Fatalf("with Proxy-Authorization: %d", res.StatusCode)
	}
}

func TestDigestSignIn(t *testing.T) {
	for _, alg := range []string{algSHA256, algMD5} {
		t.Run(alg, func(t *testing.T) {
			if alg == algMD5 && fips140.Enabled() {
				t.Skip("MD5 is not offered in FIPS mode (TestChallengeOffersSHA256ThenMD5 checks that)")
			}
			s := startSIPServer(t, Config{})
			c := s.dial(t, "", nil)
			from := "<sip:alice@example.test>"
			res := c.do("REGISTER", "sip:example.test", from)
			res = c.do("REGISTER", "sip:example.test", from, digestFor(t, res, alg, "REGISTER", "sip:example.test", "alice", alicePassword, 1))
			if res.StatusCode != 200 {
				t.Fatalf("REGISTER with Digest %s: %d %s", alg, res.StatusCode, res.Reason)
			}
			id := s.lastServed()
			if id.URI != "sip:alice@example.test" || id.Method != MethodDigest || id.Kind != Internal || id.Tenant != "example.test" {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestDigestRefusals(t *testing.T) {
	s := startSIPServer(t, Config{})
	from := "<sip:alice@example.test>"
	tests := []struct {
		name, user, password string
		want                 int
	}{
		{"wrong password", "alice", "guess", 401},
		{"unknown user", "mallory", "x", 401},
		{"disabled account", "carol", "carol-pw", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial(t, "", nil)
			f := from
			if tt.user == "carol" {
				f = "<sip:carol@example.test>"
			}
			res := c.do("REGISTER", "sip:example.test", f)
			res = c.do("REGISTER", "sip:example.test", f, digestFor(t, res, algSHA256, "REGISTER", "sip:example.test", tt.user, tt.password, 1))
			if res.StatusCode != tt.want {
				t.Fatalf("%s: %d, want %d", tt.name, res.StatusCode, tt.want)
			}
		})
	}
	t.Run("malformed Authorization", func(t *testing.T) {
		res := s.dial(t, "", nil).do("OPTIONS", "sip:example.test", from, `Authorization: Digest username="alice, realm=`)
		if res.StatusCode != 400 {
			t.Fatalf("malformed credentials: %d, want 400", res.StatusCode)
		}
	})
	t.Run("MD5 refused when disabled", func(t *testing.T) {
		s := startSIPServer(t, Config{DisableMD5: true})
		c := s.dial(t, "", nil)
		res := c.do("REGISTER", "sip:example.test", from)
		if n := len(challenges(res)); n != 1 {
			t.Fatalf("%d challenges with MD5 disabled, want 1", n)
		}
		h, _ := parseAuthHeader(challenges(res)[0])
		creds := digestCredentials("example.test", h.Params["nonce"], algMD5, "REGISTER", "sip:example.test", "alice", alicePassword, 1)
		if res := c.do("REGISTER", "sip:example.test", from, creds); res.StatusCode != 401 {
			t.Fatalf("MD5 credentials with MD5 disabled: %d, want 401", res.StatusCode)
		}
	})
}

func TestReplayedDigestRefused(t *testing.T) {
	s := startSIPServer(t, Config{})
	from := "<sip:alice@example.test>"
	first := s.dial(t, "", nil)
	res := first.do("MESSAGE", "sip:bob@example.test", from)
	creds := digestFor(t, res, algSHA256, "MESSAGE", "sip:bob@example.test", "alice", alicePassword, 1)
	if res := first.do("MESSAGE", "sip:bob@example.test", from, creds); res.StatusCode != 200 {
		t.Fatalf("first use: %d", res.StatusCode)
	}
	// An eavesdropper replays the exact Authorization on its own
	// connection (so no security association helps it).
	if res := s.dial(t, "", nil).do("MESSAGE", "sip:bob@example.test", from, creds); res.StatusCode != 401 {
		t.Fatalf("replayed credentials: %d, want 401", res.StatusCode)
	}
	// The legitimate client continues with the next nonce-count.
	h, _ := parseAuthHeader(strings.TrimPrefix(creds, "Authorization: "))
	next := digestCredentials("example.test", h.Params["nonce"], algSHA256, "MESSAGE", "sip:bob@example.test", "alice", alicePassword, 2)
	if res := s.dial(t, "", nil).do("MESSAGE", "sip:bob@example.test", from, next); res.StatusCode != 200 {
		t.Fatalf("nc=2 on the same nonce: %d, want 200", res.StatusCode)
	}
}

func TestStaleNonceAnsweredWithStaleTrue(t *testing.T) {
	var c clock
	c.set(time.Now())
	s := startSIPServer(t, Config{NonceTTL: time.Minute, Now: c.now})
	cl := s.dial(t, "", nil)
	from := "<sip:alice@example.test>"
	res := cl.do("REGISTER", "sip:example.test", from)
	creds := digestFor(t, res, algSHA256, "REGISTER", "sip:example.test", "alice", alicePassword, 1)
	c.set(c.now().Add(2 * time.Minute))
	res = cl.do("REGISTER", "sip:example.test", from, creds)
	if res.StatusCode != 401 {
		t.Fatalf("expired nonce: %d, want 401", res.StatusCode)
	}
	for _, ch := range challenges(res) {
		if !strings.Contains(ch, "stale=true") {
			t.Fatalf("challenge %q after an expired nonce lacks stale=true", ch)
		}
	}
	// The client retries with the fresh nonce without asking the user.
	res = cl.do("REGISTER", "sip:example.test", from, digestFor(t, res, algSHA256, "REGISTER", "sip:example.test", "alice", alicePassword, 1))
	if res.StatusCode != 200 {
		t.Fatalf("with the fresh nonce: %d", res.StatusCode)
	}
}

func TestSecurityAssociation(t *testing.T) {
	s := startSIPServer(t, Config{})
	closed := make(chan string, 4)
	s.authn.OnConnectionClose(func(transport, remote string) { closed <- transport + " " + remote })
	c := s.dial(t, "", nil)
	if res := c.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	// Phase two: later requests on the connection need no new challenge...
	if res := c.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>"); res.StatusCode != 200 {
		t.Fatalf("request on the associated connection: %d, want 200", res.StatusCode)
	}
	if id := s.lastServed(); id.URI != "sip:alice@example.test" {
		t.Fatalf("served as %s", id.URI)
	}
	// ...but only for the identity that authenticated.
	res := c.do("MESSAGE", "sip:alice@example.test", `"Bob" <sip:bob@example.test>`)
	if res.StatusCode != 403 {
		t.Fatalf("From differing from the association: %d, want 403", res.StatusCode)
	}
	// A request on another connection must authenticate again.
	if res := s.dial(t, "", nil).do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>"); res.StatusCode != 401 {
		t.Fatalf("request on a new connection: %d, want 401", res.StatusCode)
	}
	// The association ends with its connection.
	c.conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	for s.authn.Associations() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.authn.Associations(); n != 0 {
		t.Fatalf("%d associations left after the connection closed", n)
	}
	select {
	case got := <-closed:
		if want := "TLS " + c.conn.LocalAddr().String(); got != want {
			t.Fatalf("close hook got %q, want %q", got, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the connection-close hook was not called")
	}
}

func TestConferenceKeyOpensOnlyItsMeeting(t *testing.T) {
	s := startSIPServer(t, Config{Conferences: meetings{meetingA: keyA, meetingB: keyB}})
	focusA := "sip:" + meetingA + "@example.test;gruu;opaque=app:conf:focus"
	from := `"Guest" <sip:guest@anonymous.invalid>`
	join := func(c *sipClient, meeting, key string) int {
		res := c.do("INVITE", focusA, from)
		if res.StatusCode != 401 {
			t.Fatalf("unauthenticated INVITE: %d", res.StatusCode)
		}
		return c.do("INVITE", focusA, from, digestFor(t, res, algSHA256, "INVITE", focusA, AnonymousPrefix+meeting, key, 1)).StatusCode
	}

	c := s.dial(t, "", nil)
	if code := join(c, meetingA, keyA); code != 200 {
		t.Fatalf("anonymous join with meeting A's key: %d", code)
	}
	id := s.lastServed()
	if id.Kind != Anonymous || id.Method != MethodConferenceKey || id.Meeting != meetingA || id.DisplayName != "Guest" ||
		!strings.HasSuffix(id.URI, "@anonymous.invalid") || id.Tenant != "" {
		t.Fatalf("anonymous identity %+v", id)
	}
	if !id.MayJoin(meetingA) || id.MayJoin(meetingB) {
		t.Fatal("the identity must open meeting A and nothing else")
	}
	// The key is for taking part in the meeting, not for anything else.
	for _, m := range []string{"REGISTER", "MESSAGE", "PUBLISH"} {
		if res := c.do(m, "sip:alice@example.test", from); res.StatusCode != 403 {
			t.Fatalf("anonymous %s: %d, want 403", m, res.StatusCode)
		}
	}
	if res := c.do("SUBSCRIBE", "sip:alice@example.test", from, "Event: presence"); res.StatusCode != 403 {
		t.Fatalf("anonymous presence SUBSCRIBE: %d, want 403", res.StatusCode)
	}
	if res := c.do("SUBSCRIBE", focusA, from, "Event: conference"); res.StatusCode != 200 {
		t.Fatalf("anonymous conference SUBSCRIBE: %d, want 200", res.StatusCode)
	}
	// Meeting B's key does not open meeting A, nor does A's key open B.
	if code := join(s.dial(t, "", nil), meetingA, keyB); code != 401 {
		t.Fatalf("meeting A with B's key: %d, want 401", code)
	}
	if code := join(s.dial(t, "", nil), "m-unknown", keyA); code != 401 {
		t.Fatalf("unknown meeting: %d, want 401", code)
	}
	// Without a ConferenceKeys, no anonymous access at all.
	closed := startSIPServer(t, Config{})
	if code := join(closed.dial(t, "", nil), meetingA, keyA); code != 401 {
		t.Fatalf("anonymous join with no conferences configured: %d, want 401", code)
	}
}

func TestClientCertificateSignIn(t *testing.T) {
	s := startSIPServer(t, Config{})
	alice := s.pki.User(t, "sip:alice@example.test")
	c := s.dial(t, "", alice)
	if res := c.do("REGISTER", "sip:example.test", "<sip:alice@example.test>"); res.StatusCode != 200 {
		t.Fatalf("REGISTER with a client certificate: %d, want 200", res.StatusCode)
	}
	if id := s.lastServed(); id.Method != MethodCertificate || id.URI != "sip:alice@example.test" {
		t.Fatalf("identity %+v", id)
	}
	if res := c.do("MESSAGE", "sip:alice@example.test", "<sip:bob@example.test>"); res.StatusCode != 403 {
		t.Fatalf("alice's certificate used for bob: %d, want 403", res.StatusCode)
	}
	mallory := s.pki.User(t, "sip:mallory@example.test")
	if res := s.dial(t, "", mallory).do("OPTIONS", "sip:example.test", "<sip:mallory@example.test>"); res.StatusCode != 403 {
		t.Fatalf("certificate of a user not in the directory: %d, want 403", res.StatusCode)
	}
}

func TestFloodingSubnetThrottledOthersServed(t *testing.T) {
	th, err := NewThrottle(ThrottleConfig{PerAddress: Limit{Rate: 5, Burst: 10}, PerSubnet: Limit{Rate: 10, Burst: 20}})
	if err != nil {
		t.Fatal(err)
	}
	s := startSIPServer(t, Config{Throttle: th})
	// The flood: 4 hosts of 127.0.5.0/24, 50 requests each, as fast as
	// they can.
	var flood []*sipClient
	for i := 1; i <= 4; i++ {
		flood = append(flood, s.dial(t, "127.0.5."+strconv.Itoa(i), nil))
	}
	counts := map[int]int{}
	var retryAfter string
	for range 50 {
		for _, c := range flood {
			res := c.do("OPTIONS", "sip:example.test", "<sip:alice@example.test>")
			counts[res.StatusCode]++
			if h := res.GetHeader("Retry-After"); res.StatusCode == 503 && h != nil {
				retryAfter = h.Value()
			}
		}
	}
	// A client on another subnet keeps getting service (a challenge, and
	// then its sign-in) throughout.
	other := s.dial(t, "127.0.6.1", nil)
	if res := other.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("client from another subnet: %d, want 200", res.StatusCode)
	}
	if counts[503] < 150 || counts[401] > 30 {
		t.Fatalf("flood answered %v, want the bulk with 503", counts)
	}
	if n, err := strconv.Atoi(retryAfter); err != nil || n < 1 {
		t.Fatalf("503 without a usable Retry-After: %q", retryAfter)
	}
}

func TestMD5OnlyForOldClients(t *testing.T) {
	if fips140.Enabled() {
		t.Skip("MD5 is not offered in FIPS mode")
	}
	s := startSIPServer(t, Config{MD5OnlyFor: []string{"baresip v1."}})
	old := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "User-Agent: baresip v1.0.0 (x86_64/linux)")
	if cs := challenges(old); len(cs) != 1 || !strings.Contains(cs[0], "algorithm=MD5") {
		t.Fatalf("challenges for baresip 1.0: %q, want Digest MD5 alone", cs)
	}
	current := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "User-Agent: baresip v3.10.0")
	if cs := challenges(current); len(cs) != 2 || !strings.Contains(cs[0], "algorithm=SHA-256") {
		t.Fatalf("challenges for another client: %q, want SHA-256 first", cs)
	}
}

// TestSessionsAndSignOut: the admin sees who is signed in over which
// connection, and signing a user out closes that user's connections only;
// the client must authenticate again.
func TestSessionsAndSignOut(t *testing.T) {
	s := startSIPServer(t, Config{})
	closed := make(chan string, 4)
	s.authn.OnConnectionClose(func(transport, remote string) { closed <- transport + " " + remote })
	alice1, alice2, bob := s.dial(t, "", nil), s.dial(t, "", nil), s.dial(t, "", nil)
	for _, c := range []struct {
		conn     *sipClient
		user, pw string
	}{{alice1, "alice", alicePassword}, {alice2, "alice", alicePassword}, {bob, "bob", bobPassword}} {
		if res := c.conn.register(c.user, c.pw); res.StatusCode != 200 {
			t.Fatalf("%s signs in: %d", c.user, res.StatusCode)
		}
	}
	_ = s.dial(t, "", nil) // connected, not signed in: no session
	sessions := s.authn.Sessions()
	if len(sessions) != 3 {
		t.Fatalf("sessions %+v, want 3", sessions)
	}
	for i, want := range []*sipClient{alice1, alice2, bob} {
		got := sessions[i]
		if got.Remote != want.conn.LocalAddr().String() || got.Transport != "TLS" || got.Method != MethodDigest || got.Kind != Internal || got.Since.IsZero() {
			t.Fatalf("session %d: %+v, want the connection from %s", i, got, want.conn.LocalAddr())
		}
	}
	if sessions[0].URI != "sip:alice@example.test" || sessions[2].URI != "sip:bob@example.test" {
		t.Fatalf("sessions %+v", sessions)
	}

	if n := s.authn.SignOut("sips:alice@EXAMPLE.test"); n != 2 {
		t.Fatalf("SignOut closed %d connections, want alice's 2", n)
	}
	for range 2 {
		select {
		case got := <-closed:
			if got != "TLS "+alice1.conn.LocalAddr().String() && got != "TLS "+alice2.conn.LocalAddr().String() {
				t.Fatalf("closed %s, not one of alice's", got)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("OnConnectionClose not called for a signed-out connection")
		}
	}
	if left := s.authn.Sessions(); len(left) != 1 || left[0].URI != "sip:bob@example.test" {
		t.Fatalf("after signing alice out: %+v", left)
	}
	if res := bob.do("MESSAGE", "sip:alice@example.test", "<sip:bob@example.test>"); res.StatusCode != 200 {
		t.Fatalf("bob, still signed in: %d", res.StatusCode)
	}
	if n := s.authn.SignOut("sip:nobody@example.test"); n != 0 {
		t.Fatalf("SignOut of nobody closed %d", n)
	}

	// The counts: three sign-ins, each challenged first, bob's MESSAGE;
	// then a wrong password is refused.
	m := s.authn.Metrics()
	if m.Sessions != 1 || m.Accepted != 4 || m.Challenged != 3 || m.Refused != 0 {
		t.Fatalf("metrics %+v", m)
	}
	if res := s.dial(t, "", nil).register("alice", "wrong"); res.StatusCode == 200 {
		t.Fatal("wrong password accepted")
	}
	if m := s.authn.Metrics(); m.Refused != 1 || m.Challenged != 4 || m.Accepted != 4 {
		t.Fatalf("after a wrong password: %+v", m)
	}
}

// TestConnectionCloseHookRemoved: OnConnectionClose returns the function
// that removes the hook; a removed hook is not called, the others are.
func TestConnectionCloseHookRemoved(t *testing.T) {
	s := startSIPServer(t, Config{})
	kept, removed := make(chan string, 4), make(chan string, 4)
	s.authn.OnConnectionClose(func(transport, remote string) { kept <- remote })
	remove := s.authn.OnConnectionClose(func(transport, remote string) { removed <- remote })
	remove()
	remove() // twice does nothing more
	c := s.dial(t, "", nil)
	if res := c.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	c.conn.Close()
	select {
	case <-kept:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook kept was not called")
	}
	select {
	case got := <-removed:
		t.Fatalf("the removed hook was called for %s", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestCloseCertificates: the connections a revoked certificate opened
// are closed, and no other.
func TestCloseCertificates(t *testing.T) {
	s := startSIPServer(t, Config{})
	closed := make(chan string, 4)
	s.authn.OnConnectionClose(func(transport, remote string) { closed <- remote })
	aliceCert, bobCert := s.pki.User(t, "sip:alice@example.test"), s.pki.User(t, "sip:bob@example.test")
	alice, bob := s.dial(t, "", aliceCert), s.dial(t, "", bobCert)
	for _, c := range []*sipClient{alice, bob} {
		if res := c.do("OPTIONS", "sip:example.test", "<sip:"+map[*sipClient]string{alice: "alice", bob: "bob"}[c]+"@example.test>"); res.StatusCode != 200 {
			t.Fatalf("OPTIONS with a client certificate: %d", res.StatusCode)
		}
	}
	serial := aliceCert.Certificate().Leaf.SerialNumber
	if n := s.authn.CloseCertificates(func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(serial) == 0 }); n != 1 {
		t.Fatalf("CloseCertificates closed %d connections, want alice's", n)
	}
	select {
	case got := <-closed:
		if got != alice.conn.LocalAddr().String() {
			t.Fatalf("closed %s, not alice's connection", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("alice's connection was not closed")
	}
	if res := bob.do("OPTIONS", "sip:example.test", "<sip:bob@example.test>"); res.StatusCode != 200 {
		t.Fatalf("bob, whose certificate stands: %d", res.StatusCode)
	}
}
