package conference

import (
	"context"
	"errors"
	"testing"
	"time"
)

// handRaised finds whether the endpoint of participant pid shows a raised
// hand in ci, and whether it is there at all.
func handRaised(ci *ConferenceInfo, pid ParticipantID) (raised, found bool) {
	for _, u := range ci.Users.User {
		for _, ep := range u.Endpoints {
			if ep.ParticipantID() == pid {
				return ep.HandRaised, true
			}
		}
	}
	return false, false
}

// TestRaisedHands: a participant in the meeting raises and lowers its own
// hand, which everyone watching sees (an EventHand) and a conference-state
// subscriber (an attendee) sees on its endpoint; nobody raises another's,
// attendees lower nobody else's, a leader lowers anyone's; a guest in the
// lobby has no hand.
func TestRaisedHands(t *testing.T) {
	e := newFocusEnv(t)
	ctx := context.Background()
	m := e.schedule(MeetingOptions{Access: AccessCompany, Presenter: PresentersOrganizer})
	org := e.join(m, internal("alice"))
	bob := e.join(m, internal("bob"))
	carol := e.join(m, internal("carol"))
	guest := e.join(m, anonymous(m.ID, "Gina"))
	if guest.State != InLobby {
		t.Fatalf("the guest is %v, want in the lobby", guest.State)
	}
	events := make(chan Event, 64)
	stop, err := e.focus.Watch(ctx, m.ID, func(ev Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	sub := e.subscribe(m, carol)
	sub.until(t, func(ci *ConferenceInfo) bool { _, ok := handRaised(ci, bob.ID); return ok })
	hand := func(pid ParticipantID) bool {
		p, err := e.focus.Participant(m.ID, pid)
		if err != nil {
			t.Fatal(err)
		}
		return p.HandRaised
	}
	nextHand := func(what string) Event {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if ev.Kind == EventHand {
					return ev
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no EventHand", what)
			}
		}
	}

	if err := e.focus.SetHand(ctx, m.ID, bob.ID, bob.ID, true); err != nil {
		t.Fatal(err)
	}
	if ev := nextHand("bob raises"); ev.Participant.ID != bob.ID || !ev.Participant.HandRaised || ev.By != "" {
		t.Fatalf("bob raises: event %+v", ev)
	}
	if !hand(bob.ID) {
		t.Fatal("bob's hand is not raised")
	}
	sub.until(t, func(ci *ConferenceInfo) bool { r, _ := handRaised(ci, bob.ID); return r })

	wantErr(t, "carol lowers bob's hand", e.focus.SetHand(ctx, m.ID, carol.ID, bob.ID, false), ErrForbidden)
	wantErr(t, "carol raises bob's hand", e.focus.SetHand(ctx, m.ID, carol.ID, bob.ID, true), ErrForbidden)
	wantErr(t, "alice raises carol's hand", e.focus.SetHand(ctx, m.ID, org.ID, carol.ID, true), ErrForbidden)
	wantErr(t, "the guest in the lobby raises hers", e.focus.SetHand(ctx, m.ID, guest.ID, guest.ID, true), ErrForbidden)
	wantErr(t, "alice lowers the lobby guest's hand", e.focus.SetHand(ctx, m.ID, org.ID, guest.ID, false), ErrWrongState)
	wantErr(t, "a hand of nobody", e.focus.SetHand(ctx, m.ID, org.ID, "nobody", false), ErrNoParticipant)
	if !hand(bob.ID) || hand(carol.ID) || hand(guest.ID) {
		t.Fatal("a refused request changed a hand")
	}

	if err := e.focus.SetHand(ctx, m.ID, org.ID, bob.ID, false); err != nil {
		t.Fatalf("the organizer lowers bob's hand: %v", err)
	}
	if ev := nextHand("alice lowers bob's"); ev.Participant.ID != bob.ID || ev.Participant.HandRaised || ev.By != org.ID {
		t.Fatalf("alice lowers bob's hand: event %+v", ev)
	}
	sub.until(t, func(ci *ConferenceInfo) bool { r, ok := handRaised(ci, bob.ID); return ok && !r })

	// Admitted, the guest has a hand.
	if err := e.focus.Lobby().Admit(ctx, m.ID, org.ID, guest.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.focus.SetHand(ctx, m.ID, guest.ID, guest.ID, true); err != nil {
		t.Fatalf("the admitted guest raises her hand: %v", err)
	}
	if !hand(guest.ID) {
		t.Fatal("the admitted guest's hand is not raised")
	}
}

// TestRaisedHandIsBoundedInRate: a participant flipping its hand is
// stopped after a burst (ErrTooFast), and the others are not.
func TestRaisedHandIsBoundedInRate(t *testing.T) {
	e := newFocusEnv(t)
	ctx := context.Background()
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	e.join(m, internal("alice"))
	bob := e.join(m, internal("bob"))
	carol := e.join(m, internal("carol"))
	var err error
	n := 0
	for ; n < 100 && err == nil; n++ {
		err = e.focus.SetHand(ctx, m.ID, bob.ID, bob.ID, n%2 == 0)
	}
	if !errors.Is(err, ErrTooFast) || n > handBurst+2 {
		t.Fatalf("after %d changes: %v, want ErrTooFast after about %d", n, err, handBurst)
	}
	if err := e.focus.SetHand(ctx, m.ID, carol.ID, carol.ID, true); err != nil {
		t.Fatalf("carol, who did not flood, raises her hand: %v", err)
	}
}

func TestHandControlRequest(t *testing.T) {
	r, err := ParseControl([]byte(`<request xmlns="` + ControlNS + `" id="7"><hand raised="false" participant="p1"/></request>`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Op() != "hand" || r.Hand.Raised || r.Hand.Participant != "p1" {
		t.Fatalf("parsed %q %+v", r.Op(), r.Hand)
	}
	if _, err := ParseControl([]byte(`<request xmlns="` + ControlNS + `" id="8"><hand raised="true"/><mute-all/></request>`)); err == nil {
		t.Fatal("two operations accepted")
	}
}

// TestHandOverSIP: a SIP participant raises its hand with a control
// request, a leader's conference-state subscription shows it, and the
// leader lowers it with one.
func TestHandOverSIP(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Subject: "Hands", Access: AccessOrganization, Presenter: PresentersOrganizer})
	alice := e.user("alice")
	alice.mustJoin(m)
	alice.subscribe(m)
	bob := e.user("bob")
	bob.mustJoin(m)
	bobID := ParticipantID(endpoint(alice.notified(func(ci *ConferenceInfo) bool { return endpoint(ci, "Bob", "connected") != "" }), "Bob", "connected"))
	if code, _ := bob.control(&ControlRequest{ID: "b1", Hand: &Hand{Raised: true}}); code != 200 {
		t.Fatalf("bob raises his hand: %d", code)
	}
	alice.notified(func(ci *ConferenceInfo) bool { r, _ := handRaised(ci, bobID); return r })
	if code, _ := bob.control(&ControlRequest{ID: "b2", Hand: &Hand{Raised: true, Participant: endpoint(&alice.state, "Alice", "connected")}}); code != 403 {
		t.Fatalf("bob raises alice's hand: %d, want 403", code)
	}
	if code, _ := alice.control(&ControlRequest{ID: "a1", Hand: &Hand{Participant: string(bobID)}}); code != 200 {
		t.Fatalf("alice lowers bob's hand: %d", code)
	}
	alice.notified(func(ci *ConferenceInfo) bool { r, ok := handRaised(ci, bobID); return ok && !r })
}
