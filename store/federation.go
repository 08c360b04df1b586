package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/edge"
)

var keyFederationPolicy = []byte("policy")

// Federation returns the database's edge.FederationStore: the tenant
// admin's federation policy (edge.OpenFederation).
func (b *Bolt) Federation() edge.FederationStore { return boltFederation{b.db} }

type boltFederation struct{ db *bolt.DB }

// LoadFederation implements edge.FederationStore.
func (s boltFederation) LoadFederation(context.Context) (edge.FederationPolicy, bool, error) {
	var p edge.FederationPolicy
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketFederation).Get(keyFederationPolicy)
		if raw == nil {
			return nil
		}
		found = true
		var err error
		p, err = decode[edge.FederationPolicy](raw, "federation policy")
		return err
	})
	return p, found, err
}

// SaveFederation implements edge.FederationStore.
func (s boltFederation) SaveFederation(_ context.Context, p edge.FederationPolicy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFederation).Put(keyFederationPolicy, raw) })
}

// Federation returns the server's edge.FederationStore, which every front
// end of a pool shares.
func (r *Redis) Federation() edge.FederationStore { return redisFederation{r} }

type redisFederation struct{ r *Redis }

// LoadFederation implements edge.FederationStore.
func (s redisFederation) LoadFederation(ctx context.Context) (edge.FederationPolicy, bool, error) {
	var p edge.FederationPolicy
	raw, err := s.r.c.Get(ctx, s.r.key("federation")).Bytes()
	if errors.Is(err, redis.Nil) {
		return p, false, nil
	}
	if err != nil {
		return p, false, redisErr(err)
	}
	p, err = decode[edge.FederationPolicy](raw, "federation policy")
	return p, err == nil, err
}

// SaveFederation implements edge.FederationStore.
func (s redisFederation) SaveFederation(ctx context.Context, p edge.FederationPolicy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return redisErr(s.r.c.Set(ctx, s.r.key("federation"), raw, 0).Err())
}
