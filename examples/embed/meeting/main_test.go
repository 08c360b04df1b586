package main

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/pki"
)

// alice organizes a meeting open to her company only and joins it over
// SIP; a partner's user (as the Access Edge asserts federated users) goes
// straight in, another domain's user waits, a refused domain's user is
// turned away before the lobby, and a guest over SIP waits until alice
// admits it. Stopping the program ends alice's dialog with a BYE.
func TestMeetingWithOwnAdmissionRule(t *testing.T) {
	sipLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	crlLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		ca    *pki.CA
		focus *conference.Focus
	}
	ready := make(chan started, 1)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := rule{partners: []string{"partner.test"}, refused: []string{"rival.test"}}
	go func() {
		done <- run(ctx, sipLn, crlLn, r, func(ca *pki.CA, f *conference.Focus) { ready <- started{ca, f} })
	}()
	s := <-ready
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer crls.Close()
	verifier, err := pki.NewVerifier(pki.VerifierConfig{Roots: s.ca.CertPool(), CRLs: crls})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(user, pw, aor string) *parleytest.Client {
		c, err := parleytest.Dial(parleytest.ClientConfig{Addr: sipLn.Addr().String(), ServerName: "sip.example.test",
			Verifier: verifier, Domain: "example.test", User: user, Password: pw, AOR: aor})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.HangUp)
		return c
	}

	organizer := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, err := s.focus.Schedule(wait, organizer, conference.MeetingOptions{Access: conference.AccessCompany})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := dial("alice", "alice-pw", "").Join(wait, m)
	if err != nil || alice.State() != conference.Joined {
		t.Fatalf("alice joins: %v", err)
	}
	federated := func(aor string) (*conference.Participant, error) {
		return s.focus.Join(wait, m.ID, conference.JoinRequest{Identity: &auth.Identity{URI: aor, Kind: auth.Federated}})
	}
	if p, err := federated("sip:pat@partner.test"); err != nil || p.State != conference.Joined {
		t.Errorf("a partner's user: %v %v, want joined directly", p, err)
	}
	if p, err := federated("sip:ola@other.test"); err != nil || p.State != conference.InLobby {
		t.Errorf("another domain's user: %v %v, want the lobby", p, err)
	}
	if _, err := federated("sip:rex@rival.test"); !errors.Is(err, conference.ErrRefused) {
		t.Errorf("a refused domain's user: %v, want ErrRefused", err)
	}
	guest, err := dial(auth.AnonymousPrefix+string(m.ID), m.Key, "sip:guest@anonymous.invalid").Join(wait, m)
	if err != nil || guest.State() != conference.InLobby {
		t.Fatalf("a guest: %v, want the lobby", err)
	}
	waiting := s.focus.Lobby().Waiting(m.ID)
	if len(waiting) != 2 {
		t.Fatalf("%d wait, want 2 (ola, the guest)", len(waiting))
	}
	if err := alice.Admit(wait, waiting[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := guest.Admitted(wait); err != nil {
		t.Fatalf("the guest after alice admits it: %v", err)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	select {
	case <-alice.Ended():
	default:
		t.Error("the program stopped without ending alice's dialog")
	}
}
