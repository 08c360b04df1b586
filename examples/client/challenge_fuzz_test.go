package main

import (
	"strings"
	"testing"
)

// FuzzParseScheme: the parser of the server's challenges (Digest, and
// Bearer with authz_server, which login trusts to find the provider) never
// panics, and what it accepts survives being written back and parsed
// again.
func FuzzParseScheme(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="example.test", scope="sip", authz_server="https://idp.example.test"`,
		`Bearer realm="example.test", authz_server="https://idp.example.test", error="invalid_token"`,
		`Digest realm="example.test", nonce="abc", algorithm=SHA-256, qop="auth", stale=true`,
		`Bearer realm="a\"b"`, `Bearer`, `Bearer x`, `Digest a=b,,c="d"`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, scheme := range []string{"Bearer", "Digest"} {
			p, ok := parseScheme(in, scheme)
			if !ok {
				continue
			}
			var parts []string
			for k, v := range p {
				parts = append(parts, k+"="+quote(v))
			}
			again, ok := parseScheme(scheme+" "+strings.Join(parts, ", "), scheme)
			if !ok || len(again) != len(p) {
				t.Fatalf("%q: %v, then %v after a round trip", in, p, again)
			}
			for k, v := range p {
				if again[k] != v {
					t.Fatalf("%q: %s = %q, %q after a round trip", in, k, v, again[k])
				}
			}
		}
	})
}
