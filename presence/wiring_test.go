package presence_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
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
	// What the laptop published goes when it signs out.
	if err := laptop.publish(presence.Busy, "in a call"); err != nil {
		t.Fatal(err)
	}
	if err := bob.until(presence.Busy); err != nil {
		t.Fatal("after alice's PUBLISH: ", err)
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

// TestUnwrappedListenerIsReported: an application that forgets to wrap its
// SIP listener with Authenticator.Listener is told so in the log at the
// first REGISTER, instead of finding devices that dropped still signed
// in.
func TestUnwrappedListenerIsReported(t *testing.T) {
	for _, unwrapped := range []bool{false, true} {
		var logs lockedBuffer
		s, err := startStack(stackConfig{unwrapped: unwrapped, logger: slog.New(slog.NewTextHandler(&logs, nil))}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		alice, err := s.device("alice")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := alice.register(600); err != nil {
				t.Fatal(err)
			}
		}
		alice.hangUp()
		s.Close()
		n := strings.Count(logs.String(), "Authenticator.Listener")
		if unwrapped && n != 1 || !unwrapped && n != 0 {
			t.Errorf("unwrapped=%v: the warning logged %d times, want %d\n%s", unwrapped, n, map[bool]int{true: 1}[unwrapped], logs.String())
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
