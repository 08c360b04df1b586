package auth

import (
	"strings"
	"testing"
	"time"
)

// RFC 7616 section 3.9.1: the Authorization headers of the example, for
// MD5 and SHA-256, with the password "Circle of Life".
var rfc7616Example = []struct {
	alg, header, response string
}{
	{algMD5, `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=MD5, ` +
		`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", ` +
		`qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		"8ca523f5e9506fed4657c9700eebdbec"},
	{algSHA256, `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, ` +
		`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", ` +
		`qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
}

func TestRFC7616Example(t *testing.T) {
	for _, ex := range rfc7616Example {
		t.Run(ex.alg, func(t *testing.T) {
			h, err := parseAuthHeader(ex.header)
			if err != nil {
				t.Fatal(err)
			}
			p := h.Params
			if h.Scheme != "Digest" || p["username"] != "Mufasa" || p["uri"] != "/dir/index.html" || p["nc"] != "00000001" {
				t.Fatalf("parsed %+v", h)
			}
			ha1 := digestHA1(ex.alg, p["username"], p["realm"], "Circle of Life")
			got := digestResponse(ex.alg, ha1, p["nonce"], p["nc"], p["cnonce"], "GET", p["uri"])
			if got != ex.response || got != p["response"] {
				t.Fatalf("response %s, want %s", got, ex.response)
			}
		})
	}
}

func TestParseAuthHeader(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		check    func(*authHeader) bool
	}{
		{"bearer token68", "Bearer eyJhbGciOi.eyJzdWIi.c2ln", true,
			func(h *authHeader) bool { return h.Scheme == "Bearer" && h.Token68 == "eyJhbGciOi.eyJzdWIi.c2ln" }},
		{"bearer with padding", "Bearer abc==", true, func(h *authHeader) bool { return h.Token68 == "abc==" }},
		{"scheme only", "Digest", true, func(h *authHeader) bool { return h.Scheme == "Digest" && h.Params == nil }},
		{"quoted escapes", `Digest realm="a\"b\\c", qop=auth`, true,
			func(h *authHeader) bool { return h.Params["realm"] == `a"b\c` && h.Params["qop"] == "auth" }},
		{"names case-insensitive", `Digest USERNAME="x"`, true, func(h *authHeader) bool { return h.Params["username"] == "x" }},
		{"commas inside quotes", `Digest uri="sip:a,b@c", nc=00000001`, true,
			func(h *authHeader) bool { return h.Params["uri"] == "sip:a,b@c" && h.Params["nc"] == "00000001" }},
		{"unterminated quote", `Digest realm="abc`, false, nil},
		{"repeated parameter", `Digest realm="a", realm="b"`, false, nil},
		{"missing comma", `Digest realm="a" nonce="b"`, false, nil},
		{"bad token value", `Digest qop=a b`, false, nil},
		{"empty", "", false, nil},
		{"too long", "Digest realm=\"" + strings.Repeat("a", maxAuthHeader) + "\"", false, nil},
		{"too many parameters", "Digest " + strings.Repeat("a=b, ", maxAuthParams) + "z=y", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseAuthHeader(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !tt.check(h) {
				t.Fatalf("parsed %+v", h)
			}
		})
	}
}

func TestNonces(t *testing.T) {
	var c clock
	c.set(time.Now())
	n := newNonces(time.Minute, 4, c.now)
	a := n.mint()
	if st, _ := n.check(a); st != nonceValid {
		t.Fatal("fresh nonce not valid")
	}
	if st, _ := n.check(a[:len(a)-2] + "AA"); st != nonceInvalid {
		t.Fatal("forged nonce accepted")
	}
	other := newNonces(time.Minute, 4, c.now) // another key: another server
	if st, _ := other.check(a); st != nonceInvalid {
		t.Fatal("nonce of another key accepted")
	}
	_, issued := n.check(a)
	if !n.use(a, issued, 1) || n.use(a, issued, 1) || !n.use(a, issued, 3) || n.use(a, issued, 2) {
		t.Fatal("nonce counts must be accepted once each and only growing")
	}
	c.set(c.now().Add(2 * time.Minute))
	if st, _ := n.check(a); st != nonceStale {
		t.Fatal("expired nonce not stale")
	}

	// The table is bounded; nonces whose counts were evicted become stale,
	// never reusable.
	c.set(c.now().Add(time.Second))
	var minted []string
	for i := range 10 {
		c.set(c.now().Add(time.Millisecond))
		m := n.mint()
		minted = append(minted, m)
		_, iss := n.check(m)
		n.use(m, iss, uint64(i+1))
	}
	if len(n.counts) > 4 {
		t.Fatalf("nonce table holds %d entries, bound is 4", len(n.counts))
	}
	if st, _ := n.check(minted[0]); st != nonceStale {
		t.Fatal("a nonce whose count was evicted must be stale, or its nc could be replayed")
	}
	_, iss0 := n.check(minted[0])
	if n.use(minted[0], iss0, 99) {
		t.Fatal("a nonce below the floor was usable")
	}
	last := minted[len(minted)-1]
	st, issLast := n.check(last)
	if st != nonceValid || !n.use(last, issLast, 100) {
		t.Fatal("the newest nonce, never evicted, must stay valid and usable")
	}
}
