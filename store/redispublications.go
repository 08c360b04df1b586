package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyuc/parley/presence"
)

// Publications returns the server's presence.PublicationStore, shared by
// the pool: a presentity's publications are one hash (ETag -> JSON), and
// a sorted set orders presentities by their next expiry, for the front
// ends' sweeps. Redis drops a hash itself a minute after its last
// publication expires, should no front end be left to sweep it.
func (r *Redis) Publications() presence.PublicationStore { return redisPublications{r} }

type redisPublications struct{ r *Redis }

func (s redisPublications) key(aor string) string { return s.r.key("pubs", aor) }
func (s redisPublications) expiryKey() string     { return s.r.key("pubs-expiry") }

func (s redisPublications) read(ctx context.Context, c redis.Cmdable, aor string) ([]presence.Publication, error) {
	fields, err := c.HGetAll(ctx, s.key(aor)).Result()
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]presence.Publication, 0, len(fields))
	for _, raw := range fields {
		p, err := decode[presence.Publication]([]byte(raw), "publications of "+aor)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// write queues, in a MULTI, aor's publications replaced by pubs.
func (s redisPublications) write(ctx context.Context, p redis.Pipeliner, aor string, pubs []presence.Publication) error {
	key := s.key(aor)
	p.Del(ctx, key)
	if len(pubs) == 0 {
		p.ZRem(ctx, s.expiryKey(), aor)
		return nil
	}
	values := make([]any, 0, 2*len(pubs))
	first, last := pubs[0].Expires, pubs[0].Expires
	for _, pub := range pubs {
		raw, err := json.Marshal(pub)
		if err != nil {
			return err
		}
		values = append(values, pub.ETag, raw)
		first, last = minTime(first, pub.Expires), maxTime(last, pub.Expires)
	}
	p.HSet(ctx, key, values...)
	p.PExpireAt(ctx, key, last.Add(time.Minute))
	p.ZAdd(ctx, s.expiryKey(), redis.Z{Score: float64(first.UnixMilli()), Member: aor})
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Publications implements presence.PublicationStore.
func (s redisPublications) Publications(ctx context.Context, aor string, now time.Time) ([]presence.Publication, error) {
	pubs, err := s.read(ctx, s.r.c, aor)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return presence.LivePublications(pubs, now), nil
}

// Update implements presence.PublicationStore: read, change and write in
// one optimistic transaction on the presentity's hash.
func (s redisPublications) Update(ctx context.Context, aor string, change func([]presence.Publication) ([]presence.Publication, error)) error {
	var changeErr error
	err := s.r.optimistic(ctx, func(tx *redis.Tx) error {
		changeErr = nil
		pubs, err := s.read(ctx, tx, aor)
		if err != nil {
			return err
		}
		next, err := change(pubs)
		if err != nil {
			changeErr = err
			return err
		}
		var werr error
		if err := multi(ctx, tx, func(p redis.Pipeliner) { werr = s.write(ctx, p, aor, next) }); err != nil {
			return err
		}
		return werr
	}, s.key(aor))
	switch {
	case changeErr != nil && errors.Is(err, changeErr):
		return changeErr
	case err != nil:
		return fmt.Errorf("%w: %v", presence.ErrStore, err)
	}
	return nil
}

// Expire implements presence.PublicationStore: the presentities whose
// next expiry has passed are swept each in a transaction that watches the
// expiry set too, so that of front ends sweeping together exactly one
// removes (and reports) each expired publication.
func (s redisPublications) Expire(ctx context.Context, now time.Time) ([]string, error) {
	due, err := s.r.c.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.expiryKey(), ByScore: true, Start: "-inf", Stop: strconv.FormatInt(now.UnixMilli(), 10)}).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", presence.ErrStore, redisErr(err))
	}
	var changed []string
	for _, aor := range due {
		swept := false
		err := s.r.optimistic(ctx, func(tx *redis.Tx) error {
			swept = false
			score, err := tx.ZScore(ctx, s.expiryKey(), aor).Result()
			if errors.Is(err, redis.Nil) || err == nil && score > float64(now.UnixMilli()) {
				return nil // another front end swept it
			}
			if err != nil {
				return redisErr(err)
			}
			pubs, err := s.read(ctx, tx, aor) // unreadable (nil, not ErrRedis): dropped, so it cannot fail every sweep
			if errors.Is(err, ErrRedis) {
				return err
			}
			live := presence.LivePublications(pubs, now)
			var werr error
			if err := multi(ctx, tx, func(p redis.Pipeliner) { werr = s.write(ctx, p, aor, live) }); err != nil {
				return err
			}
			swept = werr == nil
			return werr
		}, s.key(aor), s.expiryKey())
		if err != nil {
			return changed, fmt.Errorf("%w: %v", presence.ErrStore, err)
		}
		if swept {
			changed = append(changed, aor)
		}
	}
	slices.Sort(changed)
	return changed, nil
}

// Feed returns a presence.Feed on Redis pub/sub, for one front end of the
// pool: each call is another front end, which does not hear its own
// announcements. Announcements made while a front end's connection is
// down are lost to it, so after every (re)subscription it reports "":
// check every view.
func (r *Redis) Feed() presence.Feed { return r.feedOn("presence-changes") }

// Withdrawals returns a second feed of the pool, of users whose rights
// were withdrawn on some front end (disabled, deleted, given a new
// password, signed out by the admin): each front end that hears one
// signs the user out of its own connections at once. It has the
// presence.Feed interface: Announce the user, Listen for the others'.
func (r *Redis) Withdrawals() presence.Feed { return r.feedOn("withdrawals") }

// RevokedCertificates returns a third feed of the pool, of certificates
// a front end's CA revoked (the serial number in hexadecimal): each front
// end that hears one fetches the CRL again at once and closes the
// connections the certificate opened.
func (r *Redis) RevokedCertificates() presence.Feed { return r.feedOn("revoked-certificates") }

// AdminChanges returns a fourth feed of the pool, of what an admin
// changed on some front end that every front end holds in memory (the
// application names it: the reference server says "tenants" or
// "federation"): each front end that hears one reads it again from the
// store and follows it at once.
func (r *Redis) AdminChanges() presence.Feed { return r.feedOn("admin-changes") }

func (r *Redis) feedOn(name string) presence.Feed {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &redisFeed{r: r, id: hex.EncodeToString(id[:]), channel: r.key(name)}
}

type redisFeed struct {
	r       *Redis
	id      string // this front end's, on its announcements
	channel string
}

// Announce implements presence.Feed: "<id> <aor>" on the pool's channel.
func (f *redisFeed) Announce(ctx context.Context, aor string) error {
	return redisErr(f.r.c.Publish(ctx, f.channel, f.id+" "+aor).Err())
}

// Listen implements presence.Feed.
func (f *redisFeed) Listen(ctx context.Context, changed func(aor string)) error {
	ps := f.r.c.Subscribe(ctx, f.channel)
	defer ps.Close()
	// Receive waits for the server whatever ctx says; closing the
	// subscription ends the wait.
	defer context.AfterFunc(ctx, func() { _ = ps.Close() })()
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return redisErr(err)
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			changed("") // (re)subscribed: what was said meanwhile is lost
		case *redis.Message:
			from, aor, ok := strings.Cut(m.Payload, " ")
			if ok && from != f.id && aor != "" {
				changed(aor)
			}
		}
	}
}
