package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures a Redis store.
type RedisConfig struct {
	// URL is the server's, as redis.ParseURL reads it:
	// redis://[user:password@]host:port[/db], or rediss:// for TLS.
	URL string
	// Prefix starts every key the store writes (default "parley:"), so
	// several deployments or tests can share a server.
	Prefix string
}

// Redis is the store of a pool of front ends sharing one Redis server:
// the same interfaces as Bolt, with registrations expiring natively and
// every read-modify-write atomic (a Lua script, or WATCH and MULTI
// retried), so front ends racing on one record serialize. It is safe for
// concurrent use; Close releases the connections.
type Redis struct {
	c      *redis.Client
	prefix string
}

// redisRetries bounds the optimistic transactions retried on a conflict.
const redisRetries = 32

// conflictBackoff is how long the attempt-th retry of a conflicting
// transaction waits: random up to 1 ms doubled per attempt, capped at
// 64 ms, so racers spread out instead of colliding again in lockstep
// (without it, one of 40 front ends hammering one record could lose 32
// times running).
func conflictBackoff(attempt int) time.Duration {
	ceiling := time.Millisecond << min(attempt, 6)
	return time.Duration(rand.Int64N(int64(ceiling)))
}

// OpenRedis connects to the server and checks it answers, or returns an
// error naming the URL.
func OpenRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	if cfg.URL == "" {
		return nil, errors.New("store: RedisConfig.URL is required")
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("store: Redis URL %q: %w", cfg.URL, err)
	}
	// A front end whose Redis is gone answers its clients 503 quickly
	// rather than retrying long: timeouts of 2 s, and no retry, which
	// could run a write twice whose reply was lost (the client retries
	// the request instead).
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("store: Redis at %s: %w", opt.Addr, err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "parley:"
	}
	return &Redis{c: c, prefix: cfg.Prefix}, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

func (r *Redis) key(parts ...string) string {
	k := r.prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// optimistic runs fn under WATCH of keys, again if another client changed
// them first (fn's MULTI aborted). fn's own errors come back as they are;
// the server's and the connection's wrap ErrRedis.
func (r *Redis) optimistic(ctx context.Context, fn func(tx *redis.Tx) error, keys ...string) error {
	for attempt := range redisRetries {
		if attempt > 0 {
			select {
			case <-time.After(conflictBackoff(attempt)):
			case <-ctx.Done():
				return redisErr(ctx.Err())
			}
		}
		var inner error
		err := r.c.Watch(ctx, func(tx *redis.Tx) error { inner = fn(tx); return inner }, keys...)
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue
		case err == nil || err == inner:
			return err
		default:
			return redisErr(err)
		}
	}
	return fmt.Errorf("%w: a transaction kept conflicting", ErrRedis)
}

// multi runs the writes of an optimistic transaction in MULTI.
func multi(ctx context.Context, tx *redis.Tx, writes func(p redis.Pipeliner)) error {
	_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error { writes(p); return nil })
	if err != nil && !errors.Is(err, redis.TxFailedErr) {
		return redisErr(err)
	}
	return err
}

// ErrRedis wraps the Redis store's failures to reach the server.
var ErrRedis = errors.New("store: Redis failed")

func redisErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrRedis, err)
}
