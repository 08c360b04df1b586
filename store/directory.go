package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/parleyuc/parley/auth"
)

// Directory returns the database's auth.DirectoryStore: the tenants and
// users, read from the file on every lookup (a change through the admin
// API is seen by the next sign-in).
func (b *Bolt) Directory() auth.DirectoryStore { return boltDirectory{b.db} }

type boltDirectory struct{ db *bolt.DB }

// Tenant implements auth.Directory.
func (s boltDirectory) Tenant(_ context.Context, domain string) (*auth.Tenant, error) {
	return boltGet[auth.Tenant](s.db, bucketTenants, strings.ToLower(domain), "tenant", func() error {
		return fmt.Errorf("%w: %s", auth.ErrUnknownTenant, domain)
	})
}

// User implements auth.Directory.
func (s boltDirectory) User(_ context.Context, aor string) (*auth.User, error) {
	key, err := auth.CanonicalAOR(aor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnknownUser, err)
	}
	return boltGet[auth.User](s.db, bucketUsers, key, "user", func() error {
		return fmt.Errorf("%w: %s", auth.ErrUnknownUser, aor)
	})
}

// boltGet decodes the record key of bucket, or returns missing's error.
func boltGet[T any](db *bolt.DB, bucket []byte, key, what string, missing func() error) (*T, error) {
	var v *T
	err := db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucket).Get([]byte(key))
		if raw == nil {
			return missing()
		}
		d, err := decode[T](raw, what+" "+key)
		v = &d
		return err
	})
	return v, err
}

// SaveTenant implements auth.DirectoryStore.
func (s boltDirectory) SaveTenant(_ context.Context, t auth.Tenant) error {
	t, err := auth.NormalizeTenant(t)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTenants).Put([]byte(t.Domain), raw) })
}

// SaveUser implements auth.DirectoryStore.
func (s boltDirectory) SaveUser(_ context.Context, u auth.User) error {
	u, err := auth.NormalizeUser(u)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTenants).Get([]byte(u.Tenant)) == nil {
			return fmt.Errorf("tenant: %w: %s", auth.ErrUnknownTenant, u.Tenant)
		}
		return tx.Bucket(bucketUsers).Put([]byte(u.URI), raw)
	})
}

// RemoveUser implements auth.DirectoryStore.
func (s boltDirectory) RemoveUser(_ context.Context, aor string) error {
	key, err := auth.CanonicalAOR(aor)
	if err != nil {
		return fmt.Errorf("%w: %w", auth.ErrUnknownUser, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsers)
		if b.Get([]byte(key)) == nil {
			return fmt.Errorf("%w: %s", auth.ErrUnknownUser, aor)
		}
		return b.Delete([]byte(key))
	})
}

// RemoveTenant implements auth.DirectoryStore.
func (s boltDirectory) RemoveTenant(_ context.Context, domain string) error {
	domain = strings.ToLower(domain)
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		if b.Get([]byte(domain)) == nil {
			return fmt.Errorf("%w: %s", auth.ErrUnknownTenant, domain)
		}
		// Users are keyed sip:user@domain: a tenant's are those whose
		// key ends in its domain (its Tenant field says the same).
		err := tx.Bucket(bucketUsers).ForEach(func(k, _ []byte) error {
			if strings.HasSuffix(string(k), "@"+domain) {
				return fmt.Errorf("%w: %s", auth.ErrTenantNotEmpty, domain)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return b.Delete([]byte(domain))
	})
}

// ListTenants implements auth.DirectoryStore (bbolt keeps keys sorted).
func (s boltDirectory) ListTenants(context.Context) ([]auth.Tenant, error) {
	return boltList[auth.Tenant](s.db, bucketTenants, "tenant")
}

// ListUsers implements auth.DirectoryStore.
func (s boltDirectory) ListUsers(context.Context) ([]auth.User, error) {
	return boltList[auth.User](s.db, bucketUsers, "user")
}

func boltList[T any](db *bolt.DB, bucket []byte, what string) ([]T, error) {
	out := []T{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
			v, err := decode[T](raw, what+" "+string(k))
			out = append(out, v)
			return err
		})
	})
	return out, err
}

// Directory returns the server's auth.DirectoryStore, which every front
// end of a pool shares: a user added, changed or removed on one front end
// is what the next lookup on any of them sees. The tenants and users are
// two hashes, so a lookup is one HGET.
func (r *Redis) Directory() auth.DirectoryStore { return redisDirectory{r} }

type redisDirectory struct{ r *Redis }

// Tenant implements auth.Directory.
func (s redisDirectory) Tenant(ctx context.Context, domain string) (*auth.Tenant, error) {
	raw, err := s.r.c.HGet(ctx, s.r.key("dir", "tenants"), strings.ToLower(domain)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", auth.ErrUnknownTenant, domain)
	}
	if err != nil {
		return nil, redisErr(err)
	}
	t, err := decode[auth.Tenant](raw, "tenant "+domain)
	return &t, err
}

// User implements auth.Directory.
func (s redisDirectory) User(ctx context.Context, aor string) (*auth.User, error) {
	key, err := auth.CanonicalAOR(aor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnknownUser, err)
	}
	raw, err := s.r.c.HGet(ctx, s.r.key("dir", "users"), key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", auth.ErrUnknownUser, aor)
	}
	if err != nil {
		return nil, redisErr(err)
	}
	u, err := decode[auth.User](raw, "user "+key)
	return &u, err
}

// SaveTenant implements auth.DirectoryStore.
func (s redisDirectory) SaveTenant(ctx context.Context, t auth.Tenant) error {
	t, err := auth.NormalizeTenant(t)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return redisErr(s.r.c.HSet(ctx, s.r.key("dir", "tenants"), t.Domain, raw).Err())
}

// saveUserScript sets a user only if its tenant exists, atomically.
var saveUserScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`)

// SaveUser implements auth.DirectoryStore.
func (s redisDirectory) SaveUser(ctx context.Context, u auth.User) error {
	u, err := auth.NormalizeUser(u)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ok, err := saveUserScript.Run(ctx, s.r.c, []string{s.r.key("dir", "tenants"), s.r.key("dir", "users")}, u.Tenant, u.URI, raw).Int()
	if err != nil {
		return redisErr(err)
	}
	if ok == 0 {
		return fmt.Errorf("tenant: %w: %s", auth.ErrUnknownTenant, u.Tenant)
	}
	return nil
}

// RemoveUser implements auth.DirectoryStore.
func (s redisDirectory) RemoveUser(ctx context.Context, aor string) error {
	key, err := auth.CanonicalAOR(aor)
	if err != nil {
		return fmt.Errorf("%w: %w", auth.ErrUnknownUser, err)
	}
	n, err := s.r.c.HDel(ctx, s.r.key("dir", "users"), key).Result()
	if err != nil {
		return redisErr(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", auth.ErrUnknownUser, aor)
	}
	return nil
}

// removeTenantScript removes a tenant that has no users, atomically:
// 0 no such tenant, -1 it has users, 1 removed. Users are keyed
// sip:user@domain, so a tenant's end in "@" and its domain.
var removeTenantScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local suffix = '@' .. ARGV[1]
for _, k in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(k, -string.len(suffix)) == suffix then return -1 end
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`)

// RemoveTenant implements auth.DirectoryStore.
func (s redisDirectory) RemoveTenant(ctx context.Context, domain string) error {
	domain = strings.ToLower(domain)
	n, err := removeTenantScript.Run(ctx, s.r.c, []string{s.r.key("dir", "tenants"), s.r.key("dir", "users")}, domain).Int()
	switch {
	case err != nil:
		return redisErr(err)
	case n == 0:
		return fmt.Errorf("%w: %s", auth.ErrUnknownTenant, domain)
	case n < 0:
		return fmt.Errorf("%w: %s", auth.ErrTenantNotEmpty, domain)
	}
	return nil
}

// ListTenants implements auth.DirectoryStore.
func (s redisDirectory) ListTenants(ctx context.Context) ([]auth.Tenant, error) {
	return redisList[auth.Tenant](ctx, s.r, s.r.key("dir", "tenants"), "tenant")
}

// ListUsers implements auth.DirectoryStore.
func (s redisDirectory) ListUsers(ctx context.Context) ([]auth.User, error) {
	return redisList[auth.User](ctx, s.r, s.r.key("dir", "users"), "user")
}

func redisList[T any](ctx context.Context, r *Redis, key, what string) ([]T, error) {
	all, err := r.c.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, err := decode[T]([]byte(all[k]), what+" "+k)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
