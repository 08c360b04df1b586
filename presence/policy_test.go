package presence

import (
	"context"
	"errors"
	"testing"

	"github.com/parleyuc/parley/auth"
)

// brokenPolicies is a PolicyStore that is down.
type brokenPolicies struct{}

var errDown = errors.New("connection refused")

func (brokenPolicies) Policy(context.Context, string) (UserPolicy, error) {
	return UserPolicy{}, errDown
}
func (brokenPolicies) SetPolicy(context.Context, string, UserPolicy) error {
	return errDown
}

// TestPolicyErrorsTellInputFromStore: a caller (the settings API) tells a
// wrong level (400) from a store that is down (503) with errors.Is, and
// still sees the store's own error.
func TestPolicyErrorsTellInputFromStore(t *testing.T) {
	ctx := context.Background()
	if _, err := ParseLevel("friend"); !errors.Is(err, ErrInvalidLevel) {
		t.Fatalf("ParseLevel(friend): %v, want ErrInvalidLevel", err)
	}
	ok, err := NewPresencePolicy(PresencePolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.SetContact(ctx, "sip:alice@example.test", "sip:bob@example.test", Personal+1); !errors.Is(err, ErrInvalidLevel) {
		t.Fatalf("SetContact with level 5: %v, want ErrInvalidLevel", err)
	}
	down, err := NewPresencePolicy(PresencePolicyConfig{Store: brokenPolicies{}})
	if err != nil {
		t.Fatal(err)
	}
	bob := &auth.Identity{URI: "sip:bob@example.test", Tenant: "example.test", Kind: auth.Internal}
	for name, err := range map[string]error{
		"SetContact":     down.SetContact(ctx, "sip:alice@example.test", bob.URI, Colleague),
		"SetPrivacyMode": down.SetPrivacyMode(ctx, "sip:alice@example.test", true),
		"Level":          second(down.Level(ctx, "sip:alice@example.test", bob)),
		"Blocks":         second(down.Blocks(ctx, "sip:alice@example.test", bob.URI)),
		"Policy":         second(down.Policy(ctx, "sip:alice@example.test")),
	} {
		if !errors.Is(err, ErrStore) || !errors.Is(err, errDown) || errors.Is(err, ErrInvalidLevel) {
			t.Errorf("%s with the store down: %v, want ErrStore wrapping the store's error", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }
