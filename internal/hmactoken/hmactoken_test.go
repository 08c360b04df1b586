package hmactoken

import (
	"strings"
	"testing"
)

func TestSignOpen(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tok := Sign(key, "TLS", "127.0.0.1:5061", "call-id")
	if f, ok := Open(key, tok, 3); !ok || f[1] != "127.0.0.1:5061" {
		t.Fatalf("Open = %v %v", f, ok)
	}
	if strings.ContainsAny(tok, ";,<>@ ") {
		t.Fatalf("token %q does not fit a URI parameter", tok)
	}
	for name, bad := range map[string]string{
		"other key":     Sign([]byte("another key, also 32 bytes long!"), "TLS", "127.0.0.1:5061", "call-id"),
		"other payload": Sign(key, "TLS", "10.0.0.1:5061", "call-id")[:20] + tok[20:],
		"no tag":        strings.Split(tok, ".")[0],
		"garbage":       "%%%.%%%",
	} {
		if _, ok := Open(key, bad, 3); ok {
			t.Errorf("%s: opened", name)
		}
	}
	if _, ok := Open(key, tok, 4); ok {
		t.Error("wrong field count: opened")
	}
}

func FuzzOpen(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add(Sign(key, "a", "b"))
	f.Add("x.y")
	f.Fuzz(func(t *testing.T, tok string) {
		if fields, ok := Open(key, tok, 2); ok && Sign(key, fields...) != tok {
			// A token that opens is one Sign makes (base64 has one
			// encoding without padding).
			t.Fatalf("%q opens but Sign gives %q", tok, Sign(key, fields...))
		}
	})
}
