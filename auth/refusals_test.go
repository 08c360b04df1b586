package auth

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Refusals: the ways around authentication the Authenticator must close.

func TestUDPFromAssociatedAddressNotTrusted(t *testing.T) {
	s := startSIPServer(t, Config{})
	c := s.dial(t, "", nil)
	if res := c.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	// A datagram from the very address and port of alice's TLS connection
	// (as a spoofer could send) must not ride on her association.
	local := c.conn.LocalAddr().(*net.TCPAddr)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: local.IP, Port: local.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	msg := "MESSAGE sip:bob@example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + udp.LocalAddr().String() + ";branch=z9hG4bK" + randHex(8) + ";rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=" + randHex(4) + "\r\nTo: <sip:bob@example.test>\r\n" +
		"Call-ID: " + randHex(8) + "\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
	dst, _ := net.ResolveUDPAddr("udp", s.addr)
	if _, err := udp.WriteToUDP([]byte(msg), dst); err != nil {
		t.Fatal(err)
	}
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := udp.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if code := res.(*sip.Response).StatusCode; code != 401 {
		t.Fatalf("UDP request from the TLS connection's address: %d, want 401", code)
	}
}

func TestDigestBoundToRequestURI(t *testing.T) {
	s := startSIPServer(t, Config{})
	c := s.dial(t, "", nil)
	from := "<sip:alice@example.test>"
	res := c.do("INVITE", "sip:bob@example.test", from)
	creds := digestFor(t, res, algSHA256, "INVITE", "sip:bob@example.test", "alice", alicePassword, 1)
	// Credentials computed for bob, presented on a request to someone else.
	if res := s.dial(t, "", nil).do("INVITE", "sip:ceo@example.test", from, creds); res.StatusCode != 400 {
		t.Fatalf("Digest uri for another target: %d, want 400", res.StatusCode)
	}
}

func TestDisabledAccountNotRevealedWithoutPassword(t *testing.T) {
	s := startSIPServer(t, Config{})
	c := s.dial(t, "", nil)
	from := "<sip:carol@example.test>"
	res := c.do("REGISTER", "sip:example.test", from)
	res = c.do("REGISTER", "sip:example.test", from, digestFor(t, res, algSHA256, "REGISTER", "sip:example.test", "carol", "wrong", 1))
	if res.StatusCode != 401 {
		t.Fatalf("disabled account, wrong password: %d, want 401 like any wrong password", res.StatusCode)
	}
}

func TestAssociationEndsWhenAccountDisabled(t *testing.T) {
	s := startSIPServer(t, Config{})
	c := s.dial(t, "", nil)
	if res := c.register("alice", alicePassword); res.StatusCode != 200 {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	u, _ := s.dir.User(context.Background(), "sip:alice@example.test")
	u.Enabled = false
	if err := s.dir.PutUser(*u); err != nil {
		t.Fatal(err)
	}
	if res := c.do("MESSAGE", "sip:bob@example.test", "<sip:alice@example.test>"); res.StatusCode != 403 {
		t.Fatalf("associated connection after the account was disabled: %d, want 403", res.StatusCode)
	}
}

func TestAnonymousHeldToItsMeeting(t *testing.T) {
	s := startSIPServer(t, Config{Conferences: meetings{meetingA: keyA, meetingB: keyB}})
	focusA := "sip:" + meetingA + "@example.test"
	focusB := "sip:" + meetingB + "@example.test"
	guest := `"Guest" <sip:guest@anonymous.invalid>`
	signIn := func(from string) (*sipClient, int) {
		c := s.dial(t, "", nil)
		res := c.do("INVITE", focusA, from)
		return c, c.do("INVITE", focusA, from, digestFor(t, res, algSHA256, "INVITE", focusA, AnonymousPrefix+meetingA, keyA, 1)).StatusCode
	}
	if _, code := signIn(`"Alice" <sip:alice@example.test>`); code != 403 {
		t.Fatalf("anonymous user claiming a tenant user's address: %d, want 403", code)
	}
	c, code := signIn(guest)
	if code != 200 {
		t.Fatalf("anonymous join: %d", code)
	}
	for _, tc := range []struct{ method, ruri, event string }{
		{"INVITE", "sip:bob@example.test", ""},
		{"SUBSCRIBE", focusB, "conference"},
		{"INFO", focusB, ""},
	} {
		var h []string
		if tc.event != "" {
			h = append(h, "Event: "+tc.event)
		}
		if res := c.do(tc.method, tc.ruri, guest, h...); res.StatusCode != 403 {
			t.Fatalf("anonymous %s to %s: %d, want 403", tc.method, tc.ruri, res.StatusCode)
		}
	}
	// Meeting A's key does not open meeting B.
	d := s.dial(t, "", nil)
	res := d.do("INVITE", focusB, guest)
	if code := d.do("INVITE", focusB, guest, digestFor(t, res, algSHA256, "INVITE", focusB, AnonymousPrefix+meetingB, keyA, 1)).StatusCode; code != 401 {
		t.Fatalf("meeting B with A's key: %d, want 401", code)
	}
}

func TestAnonymousRefusedOverHTTP(t *testing.T) {
	a, err := New(Config{Directory: testDirectory(t), Realm: "example.test", Conferences: meetings{meetingA: keyA}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	for _, method := range []string{"OPTIONS", "INVITE", "GET"} {
		req, _ := http.NewRequest(method, srv.URL+"/"+meetingA, nil)
		req.Header.Set("Authorization", strings.TrimPrefix(digestCredentials("example.test", a.nonces.mint(), algSHA256,
			method, "/"+meetingA, AnonymousPrefix+meetingA, keyA, 1), "Authorization: "))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("anonymous HTTP %s: %d, want 403", method, resp.StatusCode)
		}
	}
}

// TestGuestsOverHTTPForTheirMeetingOnly: HTTPForMeeting takes a guest's
// conference key for requests about the meeting it opens, and no other.
func TestGuestsOverHTTPForTheirMeetingOnly(t *testing.T) {
	a, err := New(Config{Directory: testDirectory(t), Realm: "example.test", Conferences: meetings{meetingA: keyA, meetingB: keyB}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var got *Identity
	h := a.HTTPForMeeting(func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/") },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = IdentityFromContext(r.Context()) }))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		path, user, key string
		want            int
	}{
		{"/" + meetingA, AnonymousPrefix + meetingA, keyA, 200},
		{"/" + meetingB, AnonymousPrefix + meetingA, keyA, 403}, // A's guest asking about B
		{"/" + meetingB, AnonymousPrefix + meetingB, keyA, 401}, // A's key for B
		{"/" + meetingB, "alice", alicePassword, 200},           // users as with HTTP
	} {
		got = nil
		req, _ := http.NewRequest("POST", srv.URL+tc.path, nil)
		req.Header.Set("Authorization", strings.TrimPrefix(digestCredentials("example.test", a.nonces.mint(), algSHA256,
			"POST", tc.path, tc.user, tc.key, 1), "Authorization: "))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s as %s: %d, want %d", tc.path, tc.user, resp.StatusCode, tc.want)
		}
		if tc.want == 200 && strings.HasPrefix(tc.user, AnonymousPrefix) && (got == nil || got.Kind != Anonymous || got.Meeting != meetingA) {
			t.Fatalf("guest identity %+v", got)
		}
	}
}

func TestCrossTenantRequestUsesSendersRealm(t *testing.T) {
	dir := testDirectory(t)
	_ = dir.PutTenant(Tenant{Domain: "other.test"})
	dan := User{URI: "sip:dan@other.test", Enabled: true}
	_ = dan.SetPassword("dan-pw")
	_ = dir.PutUser(dan)
	s := startSIPServer(t, Config{Directory: dir})
	c := s.dial(t, "", nil)
	from := "<sip:alice@example.test>"
	res := c.do("MESSAGE", "sip:dan@other.test", from)
	if !strings.Contains(challenges(res)[0], `realm="example.test"`) {
		t.Fatalf("alice of example.test writing to other.test challenged with %q", challenges(res)[0])
	}
	if res := c.do("MESSAGE", "sip:dan@other.test", from, digestFor(t, res, algSHA256, "MESSAGE", "sip:dan@other.test", "alice", alicePassword, 1)); res.StatusCode != 200 {
		t.Fatalf("cross-tenant MESSAGE: %d", res.StatusCode)
	}
}

func TestStaleOnlyWithRightPassword(t *testing.T) {
	var c clock
	c.set(time.Now())
	s := startSIPServer(t, Config{NonceTTL: time.Minute, Now: c.now})
	cl := s.dial(t, "", nil)
	from := "<sip:alice@example.test>"
	res := cl.do("REGISTER", "sip:example.test", from)
	wrong := digestFor(t, res, algSHA256, "REGISTER", "sip:example.test", "alice", "guess", 1)
	c.set(c.now().Add(2 * time.Minute))
	res = cl.do("REGISTER", "sip:example.test", from, wrong)
	if res.StatusCode != 401 || strings.Contains(strings.Join(challenges(res), " "), "stale=true") {
		t.Fatalf("expired nonce with a wrong password: %d %q, want 401 without stale=true", res.StatusCode, challenges(res))
	}
}
