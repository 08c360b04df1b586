package edge

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestSecretsAccept: an accepted secret verifies what another relay signs
// with it, signs nothing here until SetSecret makes it current, and its ID
// cannot then be taken by another key. Bad IDs and short keys are refused.
func TestSecretsAccept(t *testing.T) {
	signer, s := NewSecrets(0, nil), NewSecrets(0, nil)
	key := bytes.Repeat([]byte{7}, 32)
	if err := signer.SetSecret("next1", key); err != nil {
		t.Fatal(err)
	}
	c := signer.Issue("sip:bob@example.test", time.Hour)
	if _, _, err := s.Password(c.Username); !errors.Is(err, ErrCredentialInvalid) {
		t.Fatalf("before Accept: %v; want ErrCredentialInvalid", err)
	}
	if err := s.Accept("next1", key); err != nil {
		t.Fatal(err)
	}
	if err := s.Accept("next1", key); err != nil {
		t.Fatalf("accepted again, same key: %v", err)
	}
	if pass, user, err := s.Password(c.Username); err != nil || pass != c.Password || user != "sip:bob@example.test" {
		t.Fatalf("after Accept: %q %q %v", pass, user, err)
	}
	if mine := s.Issue("sip:bob@example.test", time.Hour); signerOK(signer, mine) {
		t.Fatal("the accepted secret signs before SetSecret")
	}
	if err := s.SetSecret("next1", bytes.Repeat([]byte{8}, 32)); err == nil {
		t.Fatal("SetSecret took an accepted ID with another key")
	}
	if err := s.SetSecret("next1", key); err != nil {
		t.Fatal(err)
	}
	if !signerOK(signer, s.Issue("sip:bob@example.test", time.Hour)) {
		t.Fatal("after SetSecret, the accepted secret does not sign")
	}
	for _, bad := range []struct {
		id  string
		key []byte
	}{{"", key}, {"a:b", key}, {"a.b", key}, {"a-b", key}, {"ok", key[:15]}} {
		if err := s.Accept(bad.id, bad.key); err == nil {
			t.Errorf("Accept(%q, %d bytes) succeeded", bad.id, len(bad.key))
		}
	}
}

func signerOK(s *Secrets, c Credential) bool {
	pass, _, err := s.Password(c.Username)
	return err == nil && pass == c.Password
}
