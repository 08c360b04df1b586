package auth

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func authHeaderSeeds(f *testing.F) {
	for _, ex := range rfc7616Example {
		f.Add(ex.header)
	}
	for _, s := range []string{
		`Digest realm="example.test", nonce="abc", algorithm=SHA-256, qop="auth", stale=true`,
		`Bearer realm="example.test", authz_server="https://idp.example.test"`,
		"Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",
		`Digest realm="a\"b", qop=auth`, `Digest uri="sip:a,b@c"`, "Digest", "",
	} {
		f.Add(s)
	}
}

// FuzzParseAuthHeader: the parser of Authorization and WWW-Authenticate
// values never panics, and what it accepts survives being written back
// out and parsed again.
func FuzzParseAuthHeader(f *testing.F) {
	authHeaderSeeds(f)
	f.Fuzz(func(t *testing.T, in string) {
		h, err := parseAuthHeader(in)
		if err != nil || h.Params == nil {
			return
		}
		var parts []string
		for k, v := range h.Params {
			parts = append(parts, k+"="+quote(v))
		}
		again, err := parseAuthHeader(h.Scheme + " " + strings.Join(parts, ", "))
		if err != nil {
			if len(in) > maxAuthHeader/2 {
				return // quoting can push a long header over the limit
			}
			t.Fatalf("re-rendered %q does not parse: %v", in, err)
		}
		if len(again.Params) != len(h.Params) {
			t.Fatalf("%q: %d params, %d after a round trip", in, len(h.Params), len(again.Params))
		}
		for k, v := range h.Params {
			if again.Params[k] != v {
				t.Fatalf("%q: param %s = %q, %q after a round trip", in, k, v, again.Params[k])
			}
		}
	})
}

// FuzzCredentials: no Authorization header made up without a password,
// key or signing key authenticates anybody.
func FuzzCredentials(f *testing.F) {
	authHeaderSeeds(f)
	a, err := New(Config{Directory: testDirectory(f), Realm: "example.test", Conferences: meetings{meetingA: keyA},
		Throttle: mustThrottle(f, ThrottleConfig{PerAddress: Limit{1e9, 1e9}, PerSubnet: Limit{1e9, 1e9}})})
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	// Seeds close to valid: real nonces of this Authenticator, so mutations
	// reach the response check.
	for _, user := range []string{"alice", AnonymousPrefix + meetingA} {
		c := digestCredentials("example.test", a.nonces.mint(), algSHA256, "REGISTER", "sip:example.test", user, "wrong", 1)
		f.Add(strings.TrimPrefix(c, "Authorization: "))
	}
	f.Fuzz(func(t *testing.T, creds string) {
		for _, method := range []string{"REGISTER", "INVITE"} {
			at := &attempt{method: method, uri: "sip:example.test", host: "example.test", from: "sip:alice@example.test",
				credentials: creds, source: netip.MustParseAddr("192.0.2.1"), sip: true,
				uriMatches: func(u string) bool { return u == "sip:example.test" }}
			if v := a.check(context.Background(), at); v.id != nil {
				t.Fatalf("made-up credentials %q authenticated %+v", creds, v.id)
			}
		}
	})
}

func mustThrottle(t testing.TB, cfg ThrottleConfig) *Throttle {
	t.Helper()
	th, err := NewThrottle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return th
}
