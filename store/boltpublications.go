package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/presence"
)

// Publications returns the database's presence.PublicationStore: what
// devices published survives a restart until it expires.
func (b *Bolt) Publications() presence.PublicationStore { return boltPublications{b.db} }

type boltPublications struct{ db *bolt.DB }

func getPublications(tx *bolt.Tx, aor string) ([]presence.Publication, error) {
	raw := tx.Bucket(bucketPublications).Get([]byte(aor))
	if raw == nil {
		return nil, nil
	}
	return decode[[]presence.Publication](raw, "publications of "+aor)
}

func putPublications(tx *bolt.Tx, aor string, pubs []presence.Publication) error {
	if len(pubs) == 0 {
		return tx.Bucket(bucketPublications).Delete([]byte(aor))
	}
	raw, err := json.Marshal(pubs)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketPublications).Put([]byte(aor), raw)
}

// Publications implements presence.PublicationStore.
func (s boltPublications) Publications(_ context.Context, aor string, now time.Time) ([]presence.Publication, error) {
	var out []presence.Publication
	err := s.db.View(func(tx *bolt.Tx) error {
		pubs, err := getPublications(tx, aor)
		out = presence.LivePublications(pubs, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return out, nil
}

// Update implements presence.PublicationStore in one transaction.
func (s boltPublications) Update(_ context.Context, aor string, change func([]presence.Publication) ([]presence.Publication, error)) error {
	var changeErr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		pubs, err := getPublications(tx, aor)
		if err != nil {
			return err
		}
		next, err := change(pubs)
		if err != nil {
			changeErr = err
			return err
		}
		return putPublications(tx, aor, next)
	})
	switch {
	case changeErr != nil:
		return changeErr
	case err != nil:
		return fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return nil
}

// Expire implements presence.PublicationStore. The sweep runs every
// second, so it reads first and writes (and syncs) only when something
// has expired.
func (s boltPublications) Expire(_ context.Context, now time.Time) ([]string, error) {
	expired := func(tx *bolt.Tx) (map[string][]presence.Publication, error) {
		out := map[string][]presence.Publication{}
		err := tx.Bucket(bucketPublications).ForEach(func(k, raw []byte) error {
			pubs, err := decode[[]presence.Publication](raw, "publications of "+string(k))
			if err != nil {
				out[string(k)] = nil // unreadable: dropped, so it cannot fail every sweep
			} else if live := presence.LivePublications(pubs, now); len(live) != len(pubs) {
				out[string(k)] = live
			}
			return nil
		})
		return out, err
	}
	var found map[string][]presence.Publication
	err := s.db.View(func(tx *bolt.Tx) (err error) { found, err = expired(tx); return err })
	if err == nil && len(found) > 0 {
		err = s.db.Update(func(tx *bolt.Tx) error {
			if found, err = expired(tx); err != nil {
				return err
			}
			for aor, live := range found {
				if err := putPublications(tx, aor, live); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	changed := slices.Sorted(maps.Keys(found))
	return changed, nil
}
