package edge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/sipx"
)

// TestAccessEdgeShutdownDrains: a partner's INVITE waiting in a meeting's
// lobby holds the drain (Shutdown cut short by ctx returns its error); a
// new INVITE meanwhile gets 503; once the waiting INVITE is CANCELed and
// answered, Shutdown returns nil.
func TestAccessEdgeShutdownDrains(t *testing.T) {
	s := newSite(t)
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, err := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessOrganizer})
	if err != nil {
		t.Fatal(err)
	}
	partner := s.partner()
	invite := partner.request(sip.INVITE, m.Focus(), "sip:pat@partner.test", "Pat")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := partner.client.TransactionRequest(ctx, invite)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	for deadline := time.Now().Add(5 * time.Second); len(s.focus.Participants(m.ID)) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("pat never reached the lobby")
		}
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := s.access.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an INVITE in flight: %v, want context.DeadlineExceeded", err)
	}
	another := partner.request(sip.INVITE, m.Focus(), "sip:pam@partner.test", "Pam")
	res, err := partner.client.Do(ctx, another)
	if err != nil || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("a new INVITE while draining: %v %v, want 503 with Retry-After", res, err)
	}

	if err := sipx.Cancel(ctx, partner.client, invite); err != nil {
		t.Fatal(err)
	}
	for r := range tx.Responses() {
		if r.StatusCode >= 200 {
			if r.StatusCode != 487 {
				t.Fatalf("the CANCELed INVITE: %d", r.StatusCode)
			}
			break
		}
	}
	if err := s.access.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with nothing in flight: %v", err)
	}
}

// TestAccessEdgeCloseEndsWhatWaits: Close answers a partner's INVITE
// still waiting in a meeting's lobby with 503 at once, and its relay
// ends (goleak checks no goroutine is left).
func TestAccessEdgeCloseEndsWhatWaits(t *testing.T) {
	s := newSite(t)
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, err := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessOrganizer})
	if err != nil {
		t.Fatal(err)
	}
	partner := s.partner()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := partner.client.TransactionRequest(ctx, partner.request(sip.INVITE, m.Focus(), "sip:pat@partner.test", "Pat"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	for deadline := time.Now().Add(5 * time.Second); len(s.focus.Participants(m.ID)) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("pat never reached the lobby")
		}
	}
	start := time.Now()
	if err := s.access.Close(); err != nil {
		t.Fatal(err)
	}
	for r := range tx.Responses() {
		if r.StatusCode >= 200 {
			if r.StatusCode != 503 {
				t.Fatalf("the waiting INVITE after Close: %d, want 503", r.StatusCode)
			}
			break
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the waiting INVITE was answered %v after Close, want at once", d)
	}
}
