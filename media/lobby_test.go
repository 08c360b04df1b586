package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// guest joins the meeting at the focus as an anonymous user, who waits in
// the lobby of the test meeting.
func (e *env) guest(name string) *conference.Participant {
	e.t.Helper()
	id := &auth.Identity{URI: "sip:anonymous-" + name + "@anonymous.invalid", DisplayName: name,
		Kind: auth.Anonymous, Method: auth.MethodConferenceKey, Meeting: string(e.meeting.ID)}
	p, err := e.focus.Join(context.Background(), e.meeting.ID, conference.JoinRequest{Identity: id})
	if err != nil {
		e.t.Fatal(err)
	}
	if p.State != conference.InLobby {
		e.t.Fatalf("guest %s is %v, want in the lobby", name, p.State)
	}
	return p
}

const musicKey = LobbyStream + "/" + lobbyMusicTrack

// A participant waiting in the lobby hears the lobby music and nothing of
// the meeting, and nothing it sends reaches the meeting. Once admitted,
// on the same connection, the music stops, it receives the others'
// tracks, and they receive its own.
func TestLobbyHearsMusicUntilAdmitted(t *testing.T) {
	e := newEnv(t, time.Time{})
	org := e.enter("alice")
	alice := e.join(org, clientOptions{publish: []string{KindAudio, KindVideo}})
	g := e.guest("Gina")

	// A token for the meeting itself is refused while she waits.
	c, offer, token := e.newClient(g, clientOptions{publish: []string{KindAudio}, tokenHook: func(mc conference.MediaClaims) string {
		mc.Role = "attendee"
		return e.tokens.Issue(mc, time.Minute)
	}})
	if _, err := e.bridge.Join(context.Background(), JoinRequest{Meeting: e.meeting.ID, Participant: g.ID, Token: token, Offer: offer}); !errors.Is(err, ErrRefused) {
		t.Fatalf("a meeting token for someone in the lobby: %v, want ErrRefused", err)
	}
	c.close()

	guest := e.join(g, clientOptions{publish: []string{KindAudio, KindVideo}}) // the focus's lobby token
	eventually(t, 5*time.Second, "the guest hears the lobby music", func() bool { return guest.stats(musicKey).packets >= 25 })
	time.Sleep(300 * time.Millisecond) // what the meeting would send in that time
	for _, kind := range []string{KindAudio, KindVideo} {
		if n := guest.stats(string(org.ID) + "/" + string(org.ID) + "-" + kind).packets; n != 0 {
			t.Fatalf("the guest in the lobby received %d packets of alice's %s", n, kind)
		}
		if n := alice.stats(string(g.ID) + "/" + string(g.ID) + "-" + kind).packets; n != 0 {
			t.Fatalf("alice received %d packets of the guest's %s while she waited", n, kind)
		}
	}
	if n := alice.stats(musicKey).packets; n != 0 {
		t.Fatalf("alice, in the meeting, received %d packets of lobby music", n)
	}

	if err := e.focus.Lobby().Admit(context.Background(), e.meeting.ID, org.ID, g.ID); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindAudio, KindVideo} {
		eventually(t, 5*time.Second, "the admitted guest receives alice's "+kind, func() bool {
			return guest.stats(string(org.ID)+"/"+string(org.ID)+"-"+kind).packets >= 20
		})
		eventually(t, 5*time.Second, "alice receives the admitted guest's "+kind, func() bool {
			return alice.stats(string(g.ID)+"/"+string(g.ID)+"-"+kind).packets >= 20
		})
	}
	// A packet already on its way when the session ended may still land.
	time.Sleep(100 * time.Millisecond)
	before := guest.stats(musicKey).packets
	time.Sleep(300 * time.Millisecond)
	if after := guest.stats(musicKey).packets; after != before {
		t.Fatalf("the music goes on after admission: %d packets, then %d", before, after)
	}
	select {
	case <-guest.sess.Done():
		t.Fatal("the guest's session ended on admission")
	default:
	}
}

// A participant rejected from the lobby, or who gives up waiting, loses
// its media at once.
func TestRejectedFromTheLobbyEndsMedia(t *testing.T) {
	e := newEnv(t, time.Time{})
	org := e.enter("alice")
	e.join(org, clientOptions{publish: []string{KindAudio}})
	g := e.guest("Gus")
	guest := e.join(g, clientOptions{publish: []string{KindAudio}})
	eventually(t, 5*time.Second, "the guest hears the lobby music", func() bool { return guest.stats(musicKey).packets > 0 })
	if err := e.focus.Lobby().Reject(context.Background(), e.meeting.ID, org.ID, g.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-guest.sess.Done():
	case <-time.After(time.Second):
		t.Fatal("the rejected guest's media session goes on")
	}
	// A packet already on its way when the session ended may still land.
	time.Sleep(100 * time.Millisecond)
	before := guest.stats(musicKey).packets
	time.Sleep(300 * time.Millisecond)
	if after := guest.stats(musicKey).packets; after != before {
		t.Fatalf("music after rejection: %d packets, then %d", before, after)
	}
}
