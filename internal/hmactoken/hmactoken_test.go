package hmactoken

import (
	"encoding/base64"
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

func TestSealUnseal(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tok := Seal(key, "user", "10.1.2.3:5061", "call-id")
	if f, ok := Unseal(key, tok, 3); !ok || f[1] != "10.1.2.3:5061" {
		t.Fatalf("Unseal = %v %v", f, ok)
	}
	if strings.ContainsAny(tok, ";,<>@ .") {
		t.Fatalf("token %q does not fit a URI parameter", tok)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	if strings.Contains(string(raw), "10.1.2.3") {
		t.Fatalf("a sealed token shows its fields: %q", raw)
	}
	if first, second := Seal(key, "a"), Seal(key, "a"); first == second {
		t.Fatal("two seals of the same fields are the same: no fresh nonce")
	}
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string]string{
		"other key": Seal([]byte("another key, also 32 bytes long!"), "user", "10.1.2.3:5061", "call-id"),
		"changed":   string(flipped),
		"signed":    Sign(key, "user", "10.1.2.3:5061", "call-id"),
		"garbage":   "%%%",
	} {
		if _, ok := Unseal(key, bad, 3); ok {
			t.Errorf("%s: unsealed", name)
		}
	}
	if _, ok := Unseal(key, tok, 4); ok {
		t.Error("wrong field count: unsealed")
	}
}

func FuzzUnseal(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add(Seal(key, "a", "b"))
	f.Add("x")
	f.Fuzz(func(t *testing.T, tok string) {
		if fields, ok := Unseal(key, tok, 2); ok && len(fields) != 2 {
			t.Fatalf("%q unseals to %d fields", tok, len(fields))
		}
	})
}
