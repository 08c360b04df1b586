package media

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

func isChat(text string) func(message) bool {
	return func(m message) bool { return m.Type == "chat" && m.Text == text }
}

func isError(part string) func(message) bool {
	return func(m message) bool { return m.Type == "error" && strings.Contains(m.Error, part) }
}

// The meeting's chat goes to those in the meeting: a guest in the lobby
// may not send and does not receive; admitted, she chats with alice.
// Messages are bounded in size and rate.
func TestSignalingChat(t *testing.T) {
	e := newSigEnv(t, 0)
	id := string(e.meeting.ID)
	tk, status := e.ticket(id, "alice", alicePassword, "")
	if tk == "" {
		t.Fatalf("alice's ticket: %d", status)
	}
	alice := e.open(tk)
	me := alice.await("alice joined", inState("joined"))
	tk, status = e.ticket(id, auth.AnonymousPrefix+id, e.meeting.Key, "Gina")
	if tk == "" {
		t.Fatalf("the guest's ticket: %d", status)
	}
	gina := e.open(tk)
	g := gina.await("the guest in the lobby", inState("lobby"))

	gina.send(message{Type: "chat", Text: "let me in"})
	gina.await("the lobby's refusal", isError("once a presenter has let you in"))
	alice.send(message{Type: "chat", Text: "not for the lobby"})
	m := alice.await("alice's own message back", isChat("not for the lobby"))
	if m.Participant != me.Participant || m.Name == "" || m.Time == "" {
		t.Fatalf("alice's message: %+v", m)
	}

	alice.send(message{Type: "admit", Participant: g.Participant})
	gina.await("the guest admitted", inState("joined"))
	gina.send(message{Type: "chat", Text: "  hello, alice  "})
	m = alice.await("the guest's message", func(m message) bool { return m.Type == "chat" && m.Participant == g.Participant })
	if m.Text != "hello, alice" || m.Name != "Gina" {
		t.Fatalf("alice got %+v", m)
	}
	alice.send(message{Type: "chat", Text: "welcome"})
	// The first chat the guest receives is this one: the one sent while
	// she waited in the lobby never reached her.
	m = gina.await("alice's message", func(m message) bool { return m.Type == "chat" && m.Participant == me.Participant })
	if m.Text != "welcome" {
		t.Fatalf("the guest's first chat message: %+v", m)
	}

	gina.send(message{Type: "chat", Text: strings.Repeat("x", conference.MaxChatText+1)})
	gina.await("the size refusal", isError("empty or too long"))
	gina.send(message{Type: "chat", Text: " \n "})
	gina.await("the empty refusal", isError("empty or too long"))
	for i := 0; i < chatBurst+2; i++ {
		gina.send(message{Type: "chat", Text: "flood"})
	}
	gina.await("the rate refusal", isError("too many messages"))
}

// A meeting that ends tells its browsers so, not that they were ejected.
func TestSignalingMeetingEnded(t *testing.T) {
	e := newSigEnv(t, 0)
	tk, _ := e.ticket(string(e.meeting.ID), "alice", alicePassword, "")
	alice := e.open(tk)
	alice.await("alice joined", inState("joined"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.focus.End(ctx, e.meeting.ID); err != nil {
		t.Fatal(err)
	}
	alice.await("the meeting ended", func(m message) bool { return m.Type == "ended" && m.Reason == "meeting ended" })
}

// A guest nobody admits in time is told "lobby timeout", which the web
// client explains.
func TestSignalingLobbyTimeout(t *testing.T) {
	lobby, err := conference.NewLobby(conference.LobbyConfig{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := newSigEnvLobby(t, SignalingConfig{}, lobby)
	id := string(e.meeting.ID)
	tk, status := e.ticket(id, auth.AnonymousPrefix+id, e.meeting.Key, "Gina")
	if tk == "" {
		t.Fatalf("the guest's ticket: %d", status)
	}
	gina := e.open(tk)
	gina.await("the guest in the lobby", inState("lobby"))
	gina.await("the lobby timeout", func(m message) bool { return m.Type == "ended" && m.Reason == "lobby timeout" })
}
