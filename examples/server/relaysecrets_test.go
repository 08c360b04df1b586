package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/store"
)

// TestPoolSharesRelaySecrets: two front ends, each its own process, on one
// redis-server. Relay credentials bob gets from B allocate on A's TURN
// relay, and alice's from A on B's.
func TestPoolSharesRelaySecrets(t *testing.T) {
	_, fe, _ := startPool(t, 2)
	a, b := fe[0], fe[1]

	if _, _, err := turnAllocate(t, a, relayCredentials(t, b, "bob", b.passwords["sip:bob@example.test"])); err != nil {
		t.Fatalf("bob's relay credentials from B, on A's relay: %v", err)
	}
	if _, _, err := turnAllocate(t, b, relayCredentials(t, a, "alice", a.passwords["sip:alice@example.test"])); err != nil {
		t.Fatalf("alice's relay credentials from A, on B's relay: %v", err)
	}
}

// fakeRelaySecrets is a pool's store of relay secrets whose list the test
// sets.
type fakeRelaySecrets struct {
	mu   sync.Mutex
	list []store.RelaySecret // newest first
}

func (f *fakeRelaySecrets) RotateRelaySecrets(context.Context, time.Duration, time.Duration) ([]store.RelaySecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list), nil
}

func (f *fakeRelaySecrets) set(list ...store.RelaySecret) {
	f.mu.Lock()
	f.list = list
	f.mu.Unlock()
}

// TestRelaySecretRotationAcrossThePool: two front ends follow the pool's
// secrets. The next secret, announced ahead of its start, verifies on both
// before either signs with it: once it has started, a credential from the
// front end that saw it first works on the one that has not yet, and one
// signed with the rotated-out secret still works on both.
func TestRelaySecretRotationAcrossThePool(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := &fakeRelaySecrets{}
	key := func(b byte) []byte { return slices.Repeat([]byte{b}, 32) }
	now := time.Now()
	first := store.RelaySecret{ID: "s1", Key: key(1), Since: now.Add(-time.Hour)}
	st.set(first)
	x, y := edge.NewSecrets(0, nil), edge.NewSecrets(0, nil)
	sx, sy := newRelaySecretSync(st, x, logger), newRelaySecretSync(st, y, logger)
	sync2 := func(ss ...*relaySecretSync) {
		for _, s := range ss {
			if err := s.sync(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	verifies := func(what string, s *edge.Secrets, c edge.Credential) {
		t.Helper()
		if pass, _, err := s.Password(c.Username); err != nil || pass != c.Password {
			t.Fatalf("%s: %v", what, err)
		}
	}
	sync2(sx, sy)
	old := x.Issue("sip:bob@example.test", time.Hour)
	verifies("X's credential on Y", y, old)

	// The next secret, announced: both accept it, both still sign with s1.
	next := store.RelaySecret{ID: "s2", Key: key(2), Since: now.Add(time.Minute)}
	st.set(next, first)
	sync2(sx, sy)
	// Its start comes: X reads the store before Y does.
	next.Since = now.Add(-time.Second)
	st.set(next, first)
	sync2(sx)
	c := x.Issue("sip:bob@example.test", time.Hour)
	if _, _, err := (edge.NewSecrets(0, nil)).Password(c.Username); !errors.Is(err, edge.ErrCredentialInvalid) {
		t.Fatalf("a relay outside the pool takes X's credential: %v", err)
	}
	verifies("X's credential with the new secret, on Y before Y has read that it started", y, c)
	sync2(sy)
	verifies("Y's credential on X", x, y.Issue("sip:bob@example.test", time.Hour))
	verifies("a credential of the rotated-out secret, on X", x, old)
	verifies("a credential of the rotated-out secret, on Y", y, old)
}
