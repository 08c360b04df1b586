package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

// The program serves real devices over TLS: bob sees alice sign in, go
// busy and drop her connection; a message reaches him; when the program
// stops, his subscription ends with a final NOTIFY.
func TestRegistrarWithPresence(t *testing.T) {
	sipLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	crlLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	cas := make(chan *pki.CA, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, sipLn, crlLn, map[string]string{"alice": "a-pw", "bob": "b-pw"}, func(ca *pki.CA) { cas <- ca })
	}()
	ca := <-cas

	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer crls.Close()
	verifier, err := pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(user, pw string) *parleytest.Client {
		c, err := parleytest.Dial(parleytest.ClientConfig{Addr: sipLn.Addr().String(), ServerName: "sip.example.test",
			Verifier: verifier, Domain: "example.test", User: user, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.HangUp)
		return c
	}
	alice, bob := dial("alice", "a-pw"), dial("bob", "b-pw")
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(bob.SignIn(wait))
	check(bob.Watch(wait, "alice"))
	check(bob.WaitPresence(wait, "alice", presence.Offline))
	check(alice.SignIn(wait))
	check(bob.WaitPresence(wait, "alice", presence.Available))
	check(alice.Publish(wait, presence.Busy, ""))
	check(bob.WaitPresence(wait, "alice", presence.Busy))
	check(alice.Send(wait, "bob", "hi"))
	if m := <-bob.Messages(); m.Text != "hi" || m.From != "sip:alice@example.test" {
		t.Errorf("bob got %+v", m)
	}
	alice.HangUp()
	check(bob.WaitPresence(wait, "alice", presence.Offline))

	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	for {
		select {
		case s := <-bob.SubscriptionStates():
			if s == "terminated;reason=deactivated" {
				return
			}
		case <-wait.Done():
			t.Fatal("bob's subscription did not end with the program")
		}
	}
}
