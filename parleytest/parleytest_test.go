package parleytest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/presence"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Presence follows sign-in, publication, sign-out and a dropped
// connection, with nothing wired by the test.
func TestPresenceFollowsTheDevices(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{})
	ctx := ctxFor(t)
	alice, bob := s.Client(t, "alice"), s.Client(t, "bob")
	// bob lets alice see his presence in full.
	if err := s.Policy.SetContact(ctx, s.AOR("bob"), s.AOR("alice"), presence.Workgroup); err != nil {
		t.Fatal(err)
	}
	if err := alice.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.Watch(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	must(t, alice.WaitPresence(ctx, "bob", presence.Offline))
	must(t, bob.SignIn(ctx))
	must(t, alice.WaitPresence(ctx, "bob", presence.Available))
	must(t, bob.Publish(ctx, presence.Busy, "in a meeting"))
	must(t, alice.WaitPresence(ctx, "bob", presence.Busy))
	must(t, bob.SignOut(ctx))
	must(t, alice.WaitPresence(ctx, "bob", presence.Offline))
	must(t, bob.SignIn(ctx))
	must(t, alice.WaitPresence(ctx, "bob", presence.Available))
	bob.HangUp()
	must(t, alice.WaitPresence(ctx, "bob", presence.Offline))
}

func TestMessages(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{})
	ctx := ctxFor(t)
	alice, bob := s.Client(t, "alice"), s.Client(t, "bob")
	must(t, alice.SignIn(ctx))
	must(t, bob.SignIn(ctx))
	must(t, alice.Send(ctx, "bob", "lunch?"))
	select {
	case m := <-bob.Messages():
		if m.From != s.AOR("alice") || m.Text != "lunch?" {
			t.Errorf("bob got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("bob got no message")
	}
	// carol never signed in: the stack says so.
	var st *parleytest.StatusError
	if err := alice.Send(ctx, "carol", "hello?"); !errors.As(err, &st) || st.Code != 480 {
		t.Errorf("a message to a signed-out user: %v, want 480", err)
	}
}

// A guest waits in the lobby until the organizer, joined over SIP,
// admits it with a control request; a second guest is rejected.
func TestMeetingLobby(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{})
	ctx := ctxFor(t)
	m, err := s.Schedule(ctx, "alice", conference.MeetingOptions{Access: conference.AccessOrganization})
	if err != nil {
		t.Fatal(err)
	}
	alice := s.Client(t, "alice")
	org, err := alice.Join(ctx, m)
	if err != nil || org.State() != conference.Joined {
		t.Fatalf("alice joins her meeting: %v %v", org, err)
	}
	g1, err := s.Guest(t, m, "Guest1").Join(ctx, m)
	if err != nil || g1.State() != conference.InLobby {
		t.Fatalf("a guest: %v, want the lobby", err)
	}
	g2, err := s.Guest(t, m, "Guest2").Join(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	waiting := s.Focus.Lobby().Waiting(m.ID)
	if len(waiting) != 2 {
		t.Fatalf("%d wait in the lobby, want 2", len(waiting))
	}
	must(t, org.Admit(ctx, waiting[0].ID))
	must(t, g1.Admitted(ctx))
	must(t, org.Reject(ctx, waiting[1].ID))
	var st *parleytest.StatusError
	if err := g2.Admitted(ctx); !errors.As(err, &st) || st.Code != 603 {
		t.Errorf("the rejected guest: %v, want 603", err)
	}
	// The organizer ejects the admitted guest: its dialog gets a BYE.
	must(t, org.Eject(ctx, waiting[0].ID))
	select {
	case <-g1.Ended():
	case <-ctx.Done():
		t.Fatal("the ejected guest's dialog did not end")
	}
	must(t, org.Leave(ctx))
	if n := len(s.Focus.Participants(m.ID)); n != 0 {
		t.Errorf("%d participants after everyone left", n)
	}
}

func TestRelayCredentials(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{})
	ctx := ctxFor(t)
	alice := s.Client(t, "alice")
	cred, err := alice.RelayCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Username == "" || cred.Password == "" || len(cred.URIs) != 1 || cred.URIs[0] != "turn:"+s.RelayAddr+"?transport=udp" {
		t.Errorf("credentials: %+v", cred)
	}
	if cred.TTL <= 0 || cred.TTL > 8*3600 || !cred.Expires.After(time.Now()) {
		t.Errorf("lifetime: %d s, expires %v", cred.TTL, cred.Expires)
	}
}

// An application's own admission rule plugs into the stack's Lobby.
func TestOwnAdmissionRule(t *testing.T) {
	everyoneWaits := conference.AdmissionFunc(func(ctx context.Context, m *conference.Meeting, c conference.Candidate) (conference.Admission, error) {
		return conference.WaitInLobby, nil
	})
	lobby, err := conference.NewLobby(conference.LobbyConfig{Rule: everyoneWaits})
	if err != nil {
		t.Fatal(err)
	}
	s := parleytest.Start(t, parleytest.Config{Lobby: lobby})
	ctx := ctxFor(t)
	m, err := s.Schedule(ctx, "alice", conference.MeetingOptions{Access: conference.AccessAnyone})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.Client(t, "bob").Join(ctx, m)
	if err != nil || bob.State() != conference.InLobby {
		t.Fatalf("bob under the app's rule: %v, want the lobby", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
