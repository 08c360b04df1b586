package conference

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// message sends a MESSAGE with body in the member's INVITE dialog and
// returns the status.
func (u *member) message(contentType, body string) int {
	u.t.Helper()
	req := u.inDialog(sip.MESSAGE)
	req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	req.SetBody([]byte(body))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.do(ctx, req)
	if err != nil {
		u.t.Fatal(err)
	}
	return res.StatusCode
}

// chatReceived waits for a MESSAGE from the focus and returns its body.
func (u *member) chatReceived() string {
	u.t.Helper()
	select {
	case m := <-u.messages:
		return string(m.Body())
	case <-time.After(5 * time.Second):
		u.t.Fatalf("%s: no MESSAGE from the focus", u.from)
		return ""
	}
}

// The meeting's chat: SIP participants send it with MESSAGE in their
// INVITE dialog and receive the others' the same way; chat watchers (the
// browser signaling) get every message; someone in the lobby may not
// chat; size and rate are bounded.
func TestChat(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganization})
	alice, bob := e.user("alice"), e.user("bob")
	alice.mustJoin(m)
	bob.mustJoin(m)
	// Chat goes to confirmed dialogs: wait for both ACKs to be in, which
	// the joins' 200s do not wait for.
	waitFor(t, func() bool {
		e.focus.sip.mu.Lock()
		defer e.focus.sip.mu.Unlock()
		n := 0
		for _, d := range e.focus.sip.dialogs {
			if d.meeting == m.ID && !d.subscription && d.confirmed {
				n++
			}
		}
		return n == 2
	})
	watched := make(chan ChatMessage, 16)
	stop, err := e.focus.WatchChat(context.Background(), m.ID, func(c ChatMessage) { watched <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	if code := alice.message("text/plain;charset=utf-8", "  Hello, everyone  "); code != 200 {
		t.Fatalf("alice's MESSAGE: %d", code)
	}
	if got := bob.chatReceived(); got != "Alice: Hello, everyone" {
		t.Fatalf("bob received %q", got)
	}
	select {
	case c := <-watched:
		if c.Name != "Alice" || c.Text != "Hello, everyone" || c.Meeting != m.ID || c.Time.IsZero() {
			t.Fatalf("the watcher got %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the chat watcher got nothing")
	}
	select {
	case got := <-alice.messages:
		t.Fatalf("alice got her own message back: %s", got.Body())
	case <-time.After(200 * time.Millisecond):
	}

	// A message from the API (a browser) reaches both SIP participants.
	var aliceID, guestID ParticipantID
	for _, p := range e.focus.Participants(m.ID) {
		if p.DisplayName == "Alice" {
			aliceID = p.ID
		}
	}
	if _, err := e.focus.Chat(context.Background(), m.ID, aliceID, "From the web"); err != nil {
		t.Fatal(err)
	}
	if got := bob.chatReceived(); got != "Alice: From the web" {
		t.Fatalf("bob received %q", got)
	}

	// A guest in the lobby is not in the conversation.
	guest := e.guest(m, "Gina")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = guest.join(ctx, m)
	}()
	waitFor(t, func() bool {
		for _, p := range e.focus.Participants(m.ID) {
			if p.DisplayName == "Gina" && p.State == InLobby {
				guestID = p.ID
				return true
			}
		}
		return false
	})
	if _, err := e.focus.Chat(context.Background(), m.ID, guestID, "let me in"); !errors.Is(err, ErrChatNotIn) {
		t.Fatalf("a guest in the lobby chats: %v", err)
	}
	if _, err := e.focus.Chat(context.Background(), m.ID, aliceID, "while Gina waits"); err != nil {
		t.Fatal(err)
	}
	bob.chatReceived()
	select {
	case got := <-guest.messages:
		t.Fatalf("the guest in the lobby received %s", got.Body())
	case <-time.After(200 * time.Millisecond):
	}

	// Refusals: another content type, empty, too long, too fast.
	if code := bob.message("application/json", `{}`); code != 415 {
		t.Fatalf("a MESSAGE of JSON: %d, want 415", code)
	}
	if code := bob.message("text/plain", "  "); code != 400 {
		t.Fatalf("an empty MESSAGE: %d, want 400", code)
	}
	if code := bob.message("text/plain", strings.Repeat("x", MaxChatText+1)); code != 400 {
		t.Fatalf("a MESSAGE over MaxChatText: %d, want 400", code)
	}
	limited := false
	for range sipChatBurst + 2 {
		if bob.message("text/plain", "flood") == 503 {
			limited = true
		}
	}
	if !limited {
		t.Fatal("a flood of MESSAGEs was never refused")
	}
}
