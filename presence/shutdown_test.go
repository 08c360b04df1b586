package presence_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/parleytest"
)

// nextState waits for the Subscription-State of c's next NOTIFY.
func nextState(t *testing.T, c *parleytest.Client) string {
	t.Helper()
	select {
	case s := <-c.SubscriptionStates():
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY")
		return ""
	}
}

// TestPresenceServerShutdownDrainsSubscriptions: Shutdown sends every
// watcher a final NOTIFY (terminated;reason=deactivated, RFC 6665), waits
// for its answer, and refuses new subscriptions meanwhile.
func TestPresenceServerShutdownDrainsSubscriptions(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{Users: []string{"alice", "bob"}})
	ctx := waitCtx(t)
	bob := s.Client(t, "bob")
	check(t, "bob watches alice", bob.Watch(ctx, "alice"))
	if state := nextState(t, bob); !strings.HasPrefix(state, "active") {
		t.Fatalf("first NOTIFY: %q", state)
	}
	if err := s.Presence.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if state := nextState(t, bob); state != "terminated;reason=deactivated" {
		t.Fatalf("final NOTIFY: Subscription-State %q, want terminated;reason=deactivated", state)
	}
	if n := s.Presence.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions left after Shutdown", n)
	}
	var st *parleytest.StatusError
	if err := bob.Watch(ctx, "alice"); !errors.As(err, &st) || st.Code != 503 {
		t.Fatalf("SUBSCRIBE after Shutdown: %v, want 503", err)
	}
}

// TestPresenceServerShutdownCutShortByContext: a watcher that does not
// answer its final NOTIFY holds the drain until ctx ends; Shutdown then
// returns ctx's error, and Close stops the rest at once.
func TestPresenceServerShutdownCutShortByContext(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{Users: []string{"alice", "bob"}})
	ctx := waitCtx(t)
	bob := s.Client(t, "bob")
	check(t, "bob watches alice", bob.Watch(ctx, "alice"))
	nextState(t, bob)
	bob.HoldAnswers()
	// A second: time for the final NOTIFY to go out even on a loaded
	// machine (CI's race and FIPS runs), while its answer never comes.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Presence.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an unanswered NOTIFY: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown returned after %v, not when ctx ended", d)
	}
	if state := nextState(t, bob); state != "terminated;reason=deactivated" {
		t.Fatalf("final NOTIFY: %q", state)
	}
	start = time.Now()
	if err := s.Presence.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v, want at once", d)
	}
}

// TestRouterShutdown: a MESSAGE in flight holds the drain until its
// answer; new MESSAGEs are refused with 503 meanwhile; ctx bounds it.
func TestRouterShutdown(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{Users: []string{"alice", "bob"}})
	ctx := waitCtx(t)
	alice, bob := s.Client(t, "alice"), s.Client(t, "bob")
	alice.HoldAnswers()
	check(t, "alice signs in", alice.SignIn(ctx))
	sent := make(chan error, 1)
	go func() { sent <- bob.Send(ctx, "alice", "are you there?") }()
	select {
	case <-alice.Messages(): // delivered, its answer held
	case <-ctx.Done():
		t.Fatal("the MESSAGE did not arrive")
	}

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := s.Router.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a MESSAGE in flight: %v, want context.DeadlineExceeded", err)
	}
	var st *parleytest.StatusError
	if err := bob.Send(ctx, "alice", "hello?"); !errors.As(err, &st) || st.Code != 503 {
		t.Fatalf("MESSAGE while draining: %v, want 503", err)
	}
	alice.ReleaseAnswers() // alice answers: the message in flight completes
	if err := <-sent; err != nil {
		t.Fatalf("the MESSAGE in flight: %v, want it delivered", err)
	}
	if err := s.Router.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with nothing in flight: %v", err)
	}
	if err := s.Router.Close(); err != nil {
		t.Fatal(err)
	}
}
