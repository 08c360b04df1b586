package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/presence"
)

// Policies returns the database's presence.PolicyStore: users' contacts,
// privacy mode and blocks.
func (b *Bolt) Policies() presence.PolicyStore { return boltPolicies{b.db} }

type boltPolicies struct{ db *bolt.DB }

// Policy implements presence.PolicyStore: a user with none stored has the
// zero policy.
func (s boltPolicies) Policy(_ context.Context, aor string) (presence.UserPolicy, error) {
	var p presence.UserPolicy
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if raw := tx.Bucket(bucketPolicies).Get([]byte(aor)); raw != nil {
			p, err = decode[presence.UserPolicy](raw, "policy of "+aor)
		}
		return err
	})
	return p, err
}

// SetPolicy implements presence.PolicyStore.
func (s boltPolicies) SetPolicy(_ context.Context, aor string, p presence.UserPolicy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPolicies).Put([]byte(aor), raw) })
}

// Locations returns the database's presence.LocationStore.
func (b *Bolt) Locations() presence.LocationStore { return boltLocations{b.db} }

type boltLocations struct{ db *bolt.DB }

// flowIndexKey is the flow index's entry for aor's bindings over f.
func flowIndexKey(f presence.Flow, aor string) []byte {
	return []byte(f.String() + "\x00" + aor)
}

func getBindings(tx *bolt.Tx, aor string) ([]presence.Binding, error) {
	raw := tx.Bucket(bucketLocations).Get([]byte(aor))
	if raw == nil {
		return nil, nil
	}
	bs, err := decode[[]presence.Binding](raw, "bindings of "+aor)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return bs, nil
}

// staleBinding is how long past its expiry a binding is kept (Bindings
// hides it from the moment it expires): the store's callers may run on a
// clock of their own, so only bindings long expired by this one's go.
const staleBinding = 24 * time.Hour

// putBindings replaces aor's bindings old by bs (none: the AOR is
// removed), dropping long-expired ones, and keeps the flow index to
// match: entries for the flows bs uses, none for those only old used.
func putBindings(tx *bolt.Tx, aor string, old, bs []presence.Binding) error {
	bs = slices.DeleteFunc(bs, func(b presence.Binding) bool { return time.Since(b.Expires) > staleBinding })
	flows := tx.Bucket(bucketLocationFlows)
	for _, o := range old {
		if !slices.ContainsFunc(bs, func(b presence.Binding) bool { return b.Flow() == o.Flow() }) {
			if err := flows.Delete(flowIndexKey(o.Flow(), aor)); err != nil {
				return err
			}
		}
	}
	if len(bs) == 0 {
		return tx.Bucket(bucketLocations).Delete([]byte(aor))
	}
	raw, err := json.Marshal(bs)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if err := flows.Put(flowIndexKey(b.Flow(), aor), nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketLocations).Put([]byte(aor), raw)
}

// checkBindings refuses bindings JSON could not store as they are: keys
// and flows that are not UTF-8 would come back changed (and a refresh
// would then add a second binding).
func checkBindings(bs []presence.Binding) error {
	for _, b := range bs {
		if !utf8.ValidString(b.Key()) || !utf8.ValidString(b.Flow().String()) {
			return fmt.Errorf("store: binding %q is not UTF-8", b.Key())
		}
	}
	return nil
}

// Bindings implements presence.LocationStore.
func (s boltLocations) Bindings(_ context.Context, aor string, now time.Time) ([]presence.Binding, error) {
	var out []presence.Binding
	err := s.db.View(func(tx *bolt.Tx) error {
		bs, err := getBindings(tx, aor)
		out = slices.DeleteFunc(bs, func(b presence.Binding) bool { return !now.Before(b.Expires) })
		return err
	})
	return out, err
}

// Update implements presence.LocationStore in one transaction.
func (s boltLocations) Update(_ context.Context, aor string, put []presence.Binding, remove []string, removeAll bool) error {
	if err := checkBindings(put); err != nil {
		return fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, err := getBindings(tx, aor)
		if err != nil && !removeAll {
			return err
		}
		return putBindings(tx, aor, old, presence.ApplyUpdate(old, put, remove, removeAll))
	})
	if err != nil {
		return fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return nil
}

// RemoveFlow implements presence.LocationStore.
func (s boltLocations) RemoveFlow(_ context.Context, f presence.Flow) ([]string, error) {
	var aors []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		prefix := flowIndexKey(f, "")
		flows := tx.Bucket(bucketLocationFlows)
		var keys [][]byte
		c := flows.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		for _, k := range keys {
			aor := string(k[len(prefix):])
			if err := flows.Delete(k); err != nil {
				return err
			}
			bs, err := getBindings(tx, aor)
			if err != nil {
				return err
			}
			left := slices.DeleteFunc(slices.Clone(bs), func(b presence.Binding) bool { return b.Flow() == f })
			if len(left) == len(bs) {
				continue // a stale index entry
			}
			if err := putBindings(tx, aor, bs, left); err != nil {
				return err
			}
			aors = append(aors, aor)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	slices.Sort(aors)
	return aors, nil
}
