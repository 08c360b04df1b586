package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/pki"
)

// Revocations returns the database's pki.RevocationStore: a CA's
// revocations and its published CRL, one record per CA
// (pki.CAConfig.Revocations).
func (b *Bolt) Revocations() pki.RevocationStore { return boltRevocations{b.db} }

type boltRevocations struct{ db *bolt.DB }

func getRevocations(tx *bolt.Tx, issuer string) (pki.RevocationList, error) {
	raw := tx.Bucket(bucketRevocations).Get([]byte(issuer))
	if raw == nil {
		return pki.RevocationList{}, nil
	}
	return decode[pki.RevocationList](raw, "revocation list")
}

// changeRevocations applies change to l and encodes the result, the
// record either store writes; change's error comes back as it is.
func changeRevocations(l pki.RevocationList, change func(*pki.RevocationList) error) ([]byte, error) {
	if err := change(&l); err != nil {
		return nil, err
	}
	return json.Marshal(l)
}

// RevocationList implements pki.RevocationStore.
func (s boltRevocations) RevocationList(_ context.Context, issuer string) (pki.RevocationList, error) {
	var l pki.RevocationList
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		l, err = getRevocations(tx, issuer)
		return err
	})
	return l, err
}

// UpdateRevocationList implements pki.RevocationStore in one transaction.
func (s boltRevocations) UpdateRevocationList(_ context.Context, issuer string, change func(*pki.RevocationList) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		l, err := getRevocations(tx, issuer)
		if err != nil {
			return err
		}
		raw, err := changeRevocations(l, change)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRevocations).Put([]byte(issuer), raw)
	})
}

// Revocations returns the server's pki.RevocationStore, which the CAs of
// every front end of a pool share: one JSON record per CA, updated in
// optimistic transactions.
func (r *Redis) Revocations() pki.RevocationStore { return redisRevocations{r} }

type redisRevocations struct{ r *Redis }

func (s redisRevocations) read(ctx context.Context, c redis.Cmdable, issuer string) (pki.RevocationList, error) {
	raw, err := c.Get(ctx, s.r.key("revocations", issuer)).Bytes()
	if errors.Is(err, redis.Nil) {
		return pki.RevocationList{}, nil
	}
	if err != nil {
		return pki.RevocationList{}, redisErr(err)
	}
	return decode[pki.RevocationList](raw, "revocation list")
}

// RevocationList implements pki.RevocationStore.
func (s redisRevocations) RevocationList(ctx context.Context, issuer string) (pki.RevocationList, error) {
	return s.read(ctx, s.r.c, issuer)
}

// UpdateRevocationList implements pki.RevocationStore: read, change and
// write in one optimistic transaction on the CA's record.
func (s redisRevocations) UpdateRevocationList(ctx context.Context, issuer string, change func(*pki.RevocationList) error) error {
	key := s.r.key("revocations", issuer)
	return s.r.optimistic(ctx, func(tx *redis.Tx) error {
		l, err := s.read(ctx, tx, issuer)
		if err != nil {
			return err
		}
		raw, err := changeRevocations(l, change)
		if err != nil {
			return err
		}
		return multi(ctx, tx, func(p redis.Pipeliner) { p.Set(ctx, key, raw, 0) })
	}, key)
}
