package presence_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPresenceServerShutdownDrainsSubscriptions: Shutdown sends every
// watcher a final NOTIFY (terminated;reason=deactivated, RFC 6665), waits
// for its answer, and refuses new subscriptions meanwhile.
func TestPresenceServerShutdownDrainsSubscriptions(t *testing.T) {
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
	if _, state, err := bob.next(); err != nil || !strings.HasPrefix(state, "active") {
		t.Fatalf("first NOTIFY: %q, %v", state, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.presence.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, state, err := bob.next(); err != nil || state != "terminated;reason=deactivated" {
		t.Fatalf("final NOTIFY: Subscription-State %q (%v), want terminated;reason=deactivated", state, err)
	}
	if n := s.presence.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions left after Shutdown", n)
	}
	if err := bob.watch("sip:alice@" + domain); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("SUBSCRIBE after Shutdown: %v, want 503", err)
	}
}

// TestPresenceServerShutdownCutShortByContext: a watcher that does not
// answer its final NOTIFY holds the drain until ctx ends; Shutdown then
// returns ctx's error, and Close stops the rest at once.
func TestPresenceServerShutdownCutShortByContext(t *testing.T) {
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
	if _, _, err := bob.next(); err != nil {
		t.Fatal(err)
	}
	bob.held.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.presence.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an unanswered NOTIFY: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown returned after %v, not when ctx ended", d)
	}
	if _, state, err := bob.next(); err != nil || state != "terminated;reason=deactivated" {
		t.Fatalf("final NOTIFY: %q (%v)", state, err)
	}
	start = time.Now()
	if err := s.presence.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v, want at once", d)
	}
}

// TestRouterShutdown: a MESSAGE in flight holds the drain until its
// answer; new MESSAGEs are refused with 503 meanwhile; ctx bounds it.
func TestRouterShutdown(t *testing.T) {
	s, err := startStack(stackConfig{}, "alice", "bob")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	alice, err := s.device("alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alice.hangUp)
	bob, err := s.device("bob")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bob.hangUp)
	alice.held.Store(true)
	if err := alice.register(600); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- bob.message("sip:alice@"+domain, "are you there?") }()
	select {
	case <-alice.messages: // delivered, its answer held
	case <-time.After(5 * time.Second):
		t.Fatal("the MESSAGE did not arrive")
	}

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.router.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a MESSAGE in flight: %v, want context.DeadlineExceeded", err)
	}
	if err := bob.message("sip:alice@"+domain, "hello?"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("MESSAGE while draining: %v, want 503", err)
	}
	alice.releaseAnswers() // alice answers: the message in flight completes
	if err := <-sent; err != nil {
		t.Fatalf("the MESSAGE in flight: %v, want it delivered", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := s.router.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with nothing in flight: %v", err)
	}
	if err := s.router.Close(); err != nil {
		t.Fatal(err)
	}
}
