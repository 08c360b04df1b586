package conference

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMediaTokens(t *testing.T) {
	c := newClock()
	ti, err := NewTokenIssuer(nil, c.now)
	if err != nil {
		t.Fatal(err)
	}
	claims := MediaClaims{Meeting: "meeting-a", Participant: "p1", Subject: "sip:alice@example.test", Role: "presenter"}
	tok := ti.Issue(claims, time.Minute)
	if _, err := ti.Verify(tok, claims); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}

	refused := func(name, token string, want MediaClaims, why string) {
		t.Helper()
		_, err := ti.Verify(token, want)
		if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: err = %v, want a refusal for %q", name, err, why)
		}
	}
	other := claims
	other.Meeting = "meeting-b"
	refused("token for meeting A presented for meeting B", tok, other, "another meeting")
	other = claims
	other.Participant = "p2"
	refused("token presented by another participant", tok, other, "another participant")
	other = claims
	other.Subject = "sip:mallory@example.test"
	refused("token presented by another user", tok, other, "another user")

	// Tampering: change the role in the payload and keep the MAC.
	parts := strings.Split(strings.TrimPrefix(tok, tokenPrefix), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[0])
	forged := strings.Replace(string(payload), `"role":"presenter"`, `"role":"organizer"`, 1)
	if forged == string(payload) {
		t.Fatal("test payload has no role")
	}
	refused("tampered payload", tokenPrefix+base64.RawURLEncoding.EncodeToString([]byte(forged))+"."+parts[1], claims, "bad signature")
	refused("tampered signature", tok[:len(tok)-2]+"AA", claims, "bad signature")
	refused("truncated", tok[:20], claims, "")
	refused("other format", "eyJhbGciOiJub25lIn0.e30.", claims, "malformed")
	refused("oversized", tokenPrefix+strings.Repeat("A", 3000), claims, "malformed")
	stranger, _ := NewTokenIssuer(nil, c.now)
	refused("signed by another key", stranger.Issue(claims, time.Minute), claims, "bad signature")

	c.advance(time.Minute)
	refused("expired", tok, claims, "expired")
}

func TestMediaTokenBindingAndRotation(t *testing.T) {
	c := newClock()
	ti, _ := NewTokenIssuer(nil, c.now)
	claims := MediaClaims{Meeting: "m", Participant: "p", Binding: "sha-256 AA:BB"}
	tok := ti.Issue(claims, time.Minute)
	if _, err := ti.Verify(tok, MediaClaims{Meeting: "m", Participant: "p", Binding: "sha-256 aa:bb"}); err != nil {
		t.Fatalf("bound token on its own connection: %v", err)
	}
	if _, err := ti.Verify(tok, MediaClaims{Meeting: "m", Participant: "p", Binding: "sha-256 CC:DD"}); !errors.Is(err, ErrBadToken) {
		t.Fatalf("bound token on another connection: %v", err)
	}
	if _, err := ti.Verify(tok, MediaClaims{Meeting: "m", Participant: "p"}); !errors.Is(err, ErrBadToken) {
		t.Fatalf("bound token where no binding is known: %v", err)
	}

	key2 := make([]byte, 32)
	key2[0] = 1
	if err := ti.Rotate(key2); err != nil {
		t.Fatal(err)
	}
	if _, err := ti.Verify(tok, MediaClaims{Meeting: "m", Participant: "p", Binding: "sha-256 aa:bb"}); err != nil {
		t.Fatalf("token of the previous key after one rotation: %v", err)
	}
	_ = ti.Rotate(make([]byte, 32))
	if _, err := ti.Verify(tok, MediaClaims{Meeting: "m", Participant: "p", Binding: "sha-256 aa:bb"}); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token two keys old: %v", err)
	}
	// A leaked previous key forges nothing once its tokens have expired,
	// even before the next rotation.
	leaked := make([]byte, 32)
	leaked[0] = 7
	_ = ti.Rotate(leaked)
	_ = ti.Rotate(make([]byte, 32)) // leaked is now the previous key
	forger, _ := NewTokenIssuer(leaked, c.now)
	forged := forger.Issue(MediaClaims{Meeting: "m", Participant: "p"}, time.Hour)
	if _, err := ti.Verify(forged, MediaClaims{Meeting: "m", Participant: "p"}); err != nil {
		t.Fatalf("previous key within its grace: %v", err)
	}
	c.advance(time.Minute + time.Second) // the longest lifetime ti issued
	if _, err := ti.Verify(forged, MediaClaims{Meeting: "m", Participant: "p"}); !errors.Is(err, ErrBadToken) {
		t.Fatalf("previous key after its grace: %v", err)
	}
	if _, err := NewTokenIssuer(make([]byte, 16), nil); err == nil {
		t.Error("a 128-bit key is accepted")
	}
}
