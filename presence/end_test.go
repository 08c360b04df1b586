package presence_test

import (
	"strings"
	"testing"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/parleytest"
)

// TestEndSubscriptions: the watchers an application's policy no longer
// allows get a final NOTIFY (terminated;reason=rejected, no document)
// and are gone; the others keep theirs.
func TestEndSubscriptions(t *testing.T) {
	s := parleytest.Start(t, parleytest.Config{Users: []string{"alice", "bob", "carol"}})
	ctx := waitCtx(t)
	bob, carol := s.Client(t, "bob"), s.Client(t, "carol")
	for name, c := range map[string]*parleytest.Client{"bob": bob, "carol": carol} {
		check(t, name+" watches alice", c.Watch(ctx, "alice"))
		if state := nextState(t, c); !strings.HasPrefix(state, "active") {
			t.Fatalf("%s's first NOTIFY: %q", name, state)
		}
	}
	if n := s.Presence.EndSubscriptions(nil); n != 0 {
		t.Fatalf("EndSubscriptions(nil) ended %d", n)
	}
	n := s.Presence.EndSubscriptions(func(w *auth.Identity) bool { return w.URI == "sip:bob@example.test" })
	if n != 1 {
		t.Fatalf("EndSubscriptions ended %d, want bob's 1", n)
	}
	if state := nextState(t, bob); state != "terminated;reason=rejected" {
		t.Fatalf("bob's final NOTIFY: %q, want terminated;reason=rejected", state)
	}
	if got := s.Presence.Subscriptions(); got != 1 {
		t.Fatalf("%d subscriptions after bob's ended, want carol's 1", got)
	}
	if n := s.Presence.EndSubscriptions(func(w *auth.Identity) bool { return w.URI == "sip:bob@example.test" }); n != 0 {
		t.Fatalf("a second EndSubscriptions for bob ended %d", n)
	}
}
