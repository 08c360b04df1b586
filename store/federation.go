package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/edge"
)

var keyFederationPolicy = []byte("policy")

// Federation returns the database's edge.FederationStore: the tenant
// admin's federation policy (edge.OpenFederation).
func (b *Bolt) Federation() edge.FederationStore { return boltFederation{b.db, keyFederationPolicy} }

// TenantFederation returns the edge.FederationStore of one tenant's own
// federation policy (its admin's, besides the service's).
func (b *Bolt) TenantFederation(tenant string) edge.FederationStore {
	return boltFederation{b.db, []byte("tenant-policy:" + strings.ToLower(tenant))}
}

type boltFederation struct {
	db  *bolt.DB
	key []byte
}

// LoadFederation implements edge.FederationStore.
func (s boltFederation) LoadFederation(context.Context) (edge.FederationPolicy, bool, error) {
	var p edge.FederationPolicy
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketFederation).Get(s.key)
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
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFederation).Put(s.key, raw) })
}

// Federation returns the server's edge.FederationStore, which every front
// end of a pool shares.
func (r *Redis) Federation() edge.FederationStore { return redisFederation{r, r.key("federation")} }

// TenantFederation returns the edge.FederationStore of one tenant's own
// federation policy, which every front end of a pool shares.
func (r *Redis) TenantFederation(tenant string) edge.FederationStore {
	return redisFederation{r, r.key("federation", "tenant", strings.ToLower(tenant))}
}

type redisFederation struct {
	r   *Redis
	key string
}

// LoadFederation implements edge.FederationStore.
func (s redisFederation) LoadFederation(ctx context.Context) (edge.FederationPolicy, bool, error) {
	var p edge.FederationPolicy
	raw, err := s.r.c.Get(ctx, s.key).Bytes()
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
	return redisErr(s.r.c.Set(ctx, s.key, raw, 0).Err())
}

// partnerPrefix begins the keys of the partners in the federation bucket
// ("partner:" + domain -> JSON edge.FederationPartner).
const partnerPrefix = "partner:"

// Partners returns the database's edge.PartnerStore: the partners the
// admin added while the server ran.
func (b *Bolt) Partners() edge.PartnerStore { return boltPartners{b.db} }

type boltPartners struct{ db *bolt.DB }

// LoadPartners implements edge.PartnerStore.
func (s boltPartners) LoadPartners(context.Context) ([]edge.FederationPartner, error) {
	out := []edge.FederationPartner{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFederation).Cursor()
		for k, v := c.Seek([]byte(partnerPrefix)); k != nil && bytes.HasPrefix(k, []byte(partnerPrefix)); k, v = c.Next() {
			p, err := decode[edge.FederationPartner](v, "federation partner "+string(k[len(partnerPrefix):]))
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// SavePartner implements edge.PartnerStore.
func (s boltPartners) SavePartner(_ context.Context, p edge.FederationPartner) error {
	p.Domain = strings.ToLower(p.Domain)
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketFederation).Put([]byte(partnerPrefix+p.Domain), raw) })
}

// RemovePartner implements edge.PartnerStore.
func (s boltPartners) RemovePartner(_ context.Context, domain string) (bool, error) {
	key := []byte(partnerPrefix + strings.ToLower(domain))
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFederation)
		found = b.Get(key) != nil
		return b.Delete(key)
	})
	return found, err
}

// Partners returns the server's edge.PartnerStore, which every front end
// of a pool shares: a hash of domain -> JSON edge.FederationPartner.
func (r *Redis) Partners() edge.PartnerStore { return redisPartners{r} }

type redisPartners struct{ r *Redis }

// LoadPartners implements edge.PartnerStore.
func (s redisPartners) LoadPartners(ctx context.Context) ([]edge.FederationPartner, error) {
	all, err := s.r.c.HGetAll(ctx, s.r.key("federation-partners")).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]edge.FederationPartner, 0, len(all))
	for _, d := range slices.Sorted(maps.Keys(all)) {
		p, err := decode[edge.FederationPartner]([]byte(all[d]), "federation partner "+d)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// SavePartner implements edge.PartnerStore.
func (s redisPartners) SavePartner(ctx context.Context, p edge.FederationPartner) error {
	p.Domain = strings.ToLower(p.Domain)
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return redisErr(s.r.c.HSet(ctx, s.r.key("federation-partners"), p.Domain, raw).Err())
}

// RemovePartner implements edge.PartnerStore.
func (s redisPartners) RemovePartner(ctx context.Context, domain string) (bool, error) {
	n, err := s.r.c.HDel(ctx, s.r.key("federation-partners"), strings.ToLower(domain)).Result()
	return n > 0, redisErr(err)
}
