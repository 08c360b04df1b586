package conference

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestShutdownDrains: with a participant in a SIP dialog and subscribed to
// the conference state, and a guest's INVITE waiting in the lobby,
// Shutdown ends the dialog with a BYE, the subscription with a terminating
// NOTIFY and the guest's INVITE with 503, then returns; the meeting stays
// in the store and nobody joins any more.
func TestShutdownDrains(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganization})
	alice := e.user("alice")
	alice.mustJoin(m)
	alice.subscribe(m)
	alice.notified(func(ci *ConferenceInfo) bool { return ci.Users != nil })

	guest := e.guest(m, "Guest")
	answered := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := guest.join(ctx, m)
		if err != nil {
			answered <- 0
			return
		}
		answered <- res.StatusCode
	}()
	waitFor(t, func() bool { return len(e.focus.Lobby().Waiting(m.ID)) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.focus.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case bye := <-alice.byes:
		if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "shutting down") {
			t.Errorf("BYE's Reason: %v, want the focus shutting down", r)
		}
	default:
		t.Error("Shutdown returned before alice's dialog got its BYE")
	}
	if got := <-answered; got != 503 {
		t.Errorf("the guest's waiting INVITE: %d, want 503", got)
	}
	terminated := false
	for !terminated {
		select {
		case n := <-alice.notifies:
			if h := n.GetHeader("Subscription-State"); h != nil && h.Value() == "terminated;reason=deactivated" {
				terminated = true
			}
		default:
			t.Fatal("Shutdown returned before alice's subscription got its terminating NOTIFY")
		}
	}
	if _, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: internal("bob")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := e.store.Get(context.Background(), m.ID); err != nil {
		t.Errorf("the meeting after Shutdown: %v, want it kept", err)
	}
}

// TestShutdownCutShortByContext: a participant that never answers its BYE
// holds the drain; Shutdown returns ctx's error when ctx ends, and has
// closed the Focus.
func TestShutdownCutShortByContext(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{})
	alice := e.user("alice")
	alice.stall = make(chan struct{})
	defer close(alice.stall)
	alice.mustJoin(m)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.focus.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v after its context ended", d)
	}
	if _, err := e.focus.Join(context.Background(), m.ID, JoinRequest{Identity: internal("bob")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Shutdown: %v, want ErrClosed", err)
	}
}
