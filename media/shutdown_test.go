package media

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBridgeShutdownClosesCalls: a call in a meeting when the bridge
// shuts down ends (its Done closes, so the focus hangs it up), the bridge
// refuses new calls, and Shutdown returns nil once that is done.
func TestBridgeShutdownClosesCalls(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	ph := newPhone(t, false)
	ph.Tone(440)
	c := e.dial("alice", ph)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.bridge.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Shutdown returned with the call still open")
	}
	if _, err := e.bridge.AnswerCall(newPhone(t, false).Offer(), false); err == nil {
		t.Error("the bridge answered a call after Shutdown")
	}
}

// TestBridgeShutdownCutShortByContext: Shutdown with a context that has
// already ended returns its error; the close still finishes.
func TestBridgeShutdownCutShortByContext(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	c := e.dial("alice", newPhone(t, false))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.bridge.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("the call did not end after a Shutdown cut short")
	}
}
