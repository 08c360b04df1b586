package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/store"
)

// In a pool, the front ends' TURN relays share their secrets through the
// store, so relay credentials one front end hands out work on every
// front end's relay. The secret rotates every relaySecretRotation: one
// front end adds the next secret to the store, effective
// relaySecretLead later; each front end reads the store every
// relaySecretPoll, accepting the next secret at once and signing with it
// from its start, so none refuses a credential another issued.
// Rotated-out secrets verify for edge.MaxCredentialLifetime more.
const (
	relaySecretRotation = 24 * time.Hour
	relaySecretPoll     = 30 * time.Second
	relaySecretLead     = 3 * relaySecretPoll
)

// relaySecretStore is where a pool keeps its relay secrets; *store.Redis
// is one.
type relaySecretStore interface {
	RotateRelaySecrets(ctx context.Context, every, lead time.Duration) ([]store.RelaySecret, error)
}

// relaySecretSync keeps a front end's relay secrets those of the pool.
type relaySecretSync struct {
	store   relaySecretStore
	secrets *edge.Secrets
	logger  *slog.Logger

	accepted map[string]bool // IDs accepted ahead of their start
	signed   map[string]bool // IDs made current here (in order)
}

func newRelaySecretSync(st relaySecretStore, secrets *edge.Secrets, logger *slog.Logger) *relaySecretSync {
	return &relaySecretSync{store: st, secrets: secrets, logger: logger, accepted: map[string]bool{}, signed: map[string]bool{}}
}

// sync reads (and, when due, rotates) the pool's secrets and applies
// them: the one in effect signs, the next is accepted, and those rotated
// out within the credentials' lifetime still verify.
func (s *relaySecretSync) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := s.store.RotateRelaySecrets(ctx, relaySecretRotation, relaySecretLead)
	if err != nil {
		return err
	}
	now := time.Now()
	for i := len(list) - 1; i >= 0; i-- { // oldest first: the newest in effect ends current
		e := list[i]
		if e.Since.After(now) {
			if !s.accepted[e.ID] {
				if err := s.secrets.Accept(e.ID, e.Key); err != nil {
					return err
				}
				s.accepted[e.ID] = true
			}
			continue
		}
		if s.signed[e.ID] {
			continue
		}
		if i > 0 && !list[i-1].Since.After(now) && now.Sub(list[i-1].Since) > edge.MaxCredentialLifetime {
			continue // rotated out long enough ago that nothing it signed is valid
		}
		if err := s.secrets.SetSecret(e.ID, e.Key); err != nil {
			return err
		}
		s.signed[e.ID] = true
	}
	return nil
}

// follow syncs every relaySecretPoll until ctx ends.
func (s *relaySecretSync) follow(ctx context.Context) {
	t := time.NewTicker(relaySecretPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.sync(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("relay secrets not read from the pool's store; the ones held go on", "err", err)
		}
	}
}
