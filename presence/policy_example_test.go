package presence_test

import (
	"context"
	"fmt"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/parleytest"
	"github.com/parleyuc/parley/presence"
)

// lobbyPhoneRule is an application's own visibility rule: everyone in the
// tenant sees the lobby phone's presence, whatever its privacy settings;
// for everyone else, the reference text's rule (the embedded
// PresencePolicy) decides.
type lobbyPhoneRule struct {
	*presence.PresencePolicy
	lobby string
}

// Level wraps the default: it asks the PresencePolicy first, then widens
// the answer for the lobby phone.
func (r lobbyPhoneRule) Level(ctx context.Context, presentity string, watcher *auth.Identity) (presence.Level, error) {
	level, err := r.PresencePolicy.Level(ctx, presentity, watcher)
	if err != nil {
		return level, err
	}
	if presentity == r.lobby && watcher.Tenant == "example.test" {
		return max(level, presence.Colleague), nil
	}
	return level, nil
}

// A custom presence rule plugged into a PresenceServer: the lobby phone
// and alice both turn privacy mode on, so only their contacts would see
// them; the application's rule still shows the lobby phone to the whole
// tenant.
func ExamplePresencePolicy() {
	s, err := parleytest.New(parleytest.Config{Users: []string{"lobby", "alice", "bob"},
		Visibility: func(pp *presence.PresencePolicy) presence.VisibilityRule {
			return lobbyPhoneRule{PresencePolicy: pp, lobby: "sip:lobby@example.test"}
		}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, user := range []string{"lobby", "alice"} {
		_ = s.Policy.SetPrivacyMode(ctx, s.AOR(user), true)
		d, err := s.NewClient(user)
		if err != nil {
			panic(err)
		}
		defer d.HangUp()
		if err := d.SignIn(ctx); err != nil {
			panic(err)
		}
	}
	bob, err := s.NewClient("bob")
	if err != nil {
		panic(err)
	}
	defer bob.HangUp()
	for _, user := range []string{"lobby", "alice"} {
		if err := bob.Watch(ctx, user); err != nil {
			panic(err)
		}
		<-bob.SubscriptionStates() // the first NOTIFY
		fmt.Printf("bob sees %s: %s\n", user, bob.LastPresence(user).Availability)
	}
	// Output:
	// bob sees lobby: available
	// bob sees alice: offline
}
