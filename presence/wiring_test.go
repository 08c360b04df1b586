package presence_test

import (
	"context"
	"testing"

	"github.com/parleyuc/parley/presence"
)

// TestPresenceFollowsSignInSignOutAndDroppedConnections builds the stack
// from the public API only, as an application would, with no hook wired
// by hand: a watcher sees a user sign in (REGISTER), sign out (REGISTER
// with Expires: 0), and vanish when the device's TLS connection drops.
func TestPresenceFollowsSignInSignOutAndDroppedConnections(t *testing.T) {
	s, err := startStack(stackConfig{}, "alice", "bob")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	bob, err := s.device("bob")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bob.hangUp)
	if err := bob.watch("sip:alice@" + domain); err != nil {
		t.Fatal(err)
	}
	if err := bob.until(presence.Offline); err != nil {
		t.Fatal("before alice signs in: ", err)
	}

	laptop, err := s.device("alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(laptop.hangUp)
	if err := laptop.register(600); err != nil {
		t.Fatal(err)
	}
	if err := bob.until(presence.Available); err != nil {
		t.Fatal("after alice's REGISTER: ", err)
	}
	if err := laptop.register(0); err != nil {
		t.Fatal(err)
	}
	if err := bob.until(presence.Offline); err != nil {
		t.Fatal("after alice's REGISTER with Expires: 0: ", err)
	}

	phone, err := s.device("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := phone.register(600); err != nil {
		t.Fatal(err)
	}
	if err := bob.until(presence.Available); err != nil {
		t.Fatal("after the phone's REGISTER: ", err)
	}
	phone.hangUp()
	if err := bob.until(presence.Offline); err != nil {
		t.Fatal("after the phone's connection dropped: ", err)
	}
	if bs, err := s.registrar.Lookup(context.Background(), "sip:alice@"+domain); err != nil || len(bs) != 0 {
		t.Fatalf("bindings after the connection dropped: %v (%v), want none", bs, err)
	}
}
