package media

import (
	"testing"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// rosterHand finds whether the roster message lists participant pid with
// a raised hand.
func rosterHand(pid conference.ParticipantID, raised bool) func(message) bool {
	return func(m message) bool {
		if m.Type != "roster" {
			return false
		}
		for _, p := range m.Participants {
			if p.ID == pid {
				return p.Hand == raised
			}
		}
		return false
	}
}

// A raised hand over the browser signaling: a guest in the lobby has
// none; admitted, she raises hers and alice's roster shows it (and her
// own state); alice lowers it; flipping it too fast is refused.
func TestSignalingRaisedHand(t *testing.T) {
	e := newSigEnv(t, 0)
	id := string(e.meeting.ID)
	tk, status := e.ticket(id, "alice", alicePassword, "")
	if tk == "" {
		t.Fatalf("alice's ticket: %d", status)
	}
	alice := e.open(tk)
	alice.await("alice joined", inState("joined"))
	tk, status = e.ticket(id, auth.AnonymousPrefix+id, e.meeting.Key, "Gina")
	if tk == "" {
		t.Fatalf("the guest's ticket: %d", status)
	}
	gina := e.open(tk)
	g := gina.await("the guest in the lobby", inState("lobby"))
	gina.send(message{Type: "raise-hand"})
	gina.await("the lobby's refusal", isError("not in the meeting"))

	alice.send(message{Type: "admit", Participant: g.Participant})
	gina.await("the guest admitted", inState("joined"))
	gina.send(message{Type: "raise-hand"})
	gina.await("her own hand raised", func(m message) bool { return m.Type == "state" && m.Hand })
	alice.await("alice sees the guest's hand", rosterHand(g.Participant, true))
	alice.send(message{Type: "lower-hand", Participant: g.Participant})
	alice.await("alice lowered it", rosterHand(g.Participant, false))
	gina.await("her hand lowered", func(m message) bool { return m.Type == "state" && m.State == "joined" && !m.Hand })
	for range 10 {
		gina.send(message{Type: "raise-hand"})
		gina.send(message{Type: "lower-hand"})
	}
	gina.await("the rate refusal", isError("too often"))
}
