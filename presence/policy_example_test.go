package presence_test

import (
	"context"
	"fmt"

	"github.com/parleyuc/parley/auth"
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
	s, err := startStack(stackConfig{rule: func(pp *presence.PresencePolicy) presence.VisibilityRule {
		return lobbyPhoneRule{PresencePolicy: pp, lobby: "sip:lobby@example.test"}
	}}, "lobby", "alice", "bob")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, user := range []string{"lobby", "alice"} {
		_ = s.policy.SetPrivacyMode(ctx, "sip:"+user+"@example.test", true)
		d, err := s.device(user)
		if err != nil {
			panic(err)
		}
		defer d.hangUp()
		if err := d.register(600); err != nil {
			panic(err)
		}
	}
	bob, err := s.device("bob")
	if err != nil {
		panic(err)
	}
	defer bob.hangUp()
	for _, user := range []string{"lobby", "alice"} {
		if err := bob.watch("sip:" + user + "@example.test"); err != nil {
			panic(err)
		}
		seen, _, err := bob.next()
		if err != nil {
			panic(err)
		}
		fmt.Printf("bob sees %s: %s\n", user, seen)
	}
	// Output:
	// bob sees lobby: available
	// bob sees alice: offline
}
