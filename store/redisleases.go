package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyuc/parley/conference"
)

// HostLeases returns the pool's conference.HostLeases. A meeting's lease
// is one key, "<token> <host>" with the TTL as its expiry (PX), so it
// never names two hosts; its token comes from a counter key of its own,
// INCR'd at every grant and never expiring, so tokens never repeat. Its
// Meetings' UpdateFenced checks a token against that counter.
func (r *Redis) HostLeases() conference.HostLeases { return redisLeases{r} }

type redisLeases struct{ r *Redis }

func (s redisLeases) keys(meeting conference.MeetingID) []string {
	return []string{s.r.key("meeting-host", string(meeting)), s.r.key("meeting-host-token", string(meeting))}
}

// acquireLease grants the lease unless another host holds it: KEYS
// lease, token counter; ARGV host, TTL in ms. It answers {1, token} when
// granted, or {0, token, host, remaining ms} of the holder.
var acquireLease = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  local host = string.sub(cur, sp + 1)
  if host ~= ARGV[1] then
    return {0, string.sub(cur, 1, sp - 1), host, redis.call('PTTL', KEYS[1])}
  end
end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {1, t}`)

// renewLease extends the lease if it still holds ARGV[1] ("<token>
// <host>"): KEYS lease; ARGV value, TTL in ms. It answers 1 if renewed.
var renewLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// releaseLease deletes the lease if it still holds ARGV[1].
var releaseLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

func leaseValue(l conference.Lease) string { return strconv.FormatUint(l.Token, 10) + " " + l.Host }

// Acquire implements conference.HostLeases.
func (s redisLeases) Acquire(ctx context.Context, meeting conference.MeetingID, host string, ttl time.Duration) (conference.Lease, error) {
	if err := conference.ValidLease(meeting, host, ttl); err != nil {
		return conference.Lease{}, err
	}
	if strings.ContainsAny(host, " \r\n") {
		return conference.Lease{}, fmt.Errorf("store: lease host %q has a space", host)
	}
	start := time.Now()
	res, err := acquireLease.Run(ctx, s.r.c, s.keys(meeting), host, ttl.Milliseconds()).Slice()
	if err != nil {
		return conference.Lease{}, redisErr(err)
	}
	if n, _ := res[0].(int64); n == 1 {
		tok, _ := res[1].(int64)
		return conference.Lease{Meeting: meeting, Host: host, Token: uint64(tok), Expires: start.Add(ttl)}, nil
	}
	if len(res) < 4 {
		return conference.Lease{}, fmt.Errorf("%w: lease of %s: malformed reply", ErrRedis, meeting)
	}
	tok, err := strconv.ParseUint(fmt.Sprint(res[1]), 10, 64)
	if err != nil {
		return conference.Lease{}, fmt.Errorf("store: lease of %s: token: %w", meeting, err)
	}
	left, _ := res[3].(int64)
	holder := conference.Lease{Meeting: meeting, Host: fmt.Sprint(res[2]), Token: tok, Expires: start.Add(time.Duration(left) * time.Millisecond)}
	return conference.Lease{}, &conference.HostedError{Holder: holder}
}

// Renew implements conference.HostLeases.
func (s redisLeases) Renew(ctx context.Context, l conference.Lease, ttl time.Duration) (conference.Lease, error) {
	if err := conference.ValidLease(l.Meeting, l.Host, ttl); err != nil {
		return conference.Lease{}, err
	}
	start := time.Now()
	n, err := renewLease.Run(ctx, s.r.c, s.keys(l.Meeting)[:1], leaseValue(l), ttl.Milliseconds()).Int()
	if err != nil {
		return conference.Lease{}, redisErr(err)
	}
	if n != 1 {
		return conference.Lease{}, fmt.Errorf("%w: %s, token %d", conference.ErrLeaseLost, l.Meeting, l.Token)
	}
	l.Expires = start.Add(ttl)
	return l, nil
}

// Release implements conference.HostLeases.
func (s redisLeases) Release(ctx context.Context, l conference.Lease) error {
	return redisErr(releaseLease.Run(ctx, s.r.c, s.keys(l.Meeting)[:1], leaseValue(l)).Err())
}

// Holder implements conference.HostLeases.
func (s redisLeases) Holder(ctx context.Context, meeting conference.MeetingID) (conference.Lease, error) {
	start := time.Now()
	key := s.keys(meeting)[0]
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := s.r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get, pttl = p.Get(ctx, key), p.PTTL(ctx, key)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return conference.Lease{}, fmt.Errorf("%w: no host holds %s", conference.ErrNotFound, meeting)
	}
	if err != nil {
		return conference.Lease{}, redisErr(err)
	}
	return parseLease(meeting, get.Val(), start.Add(pttl.Val()))
}

// parseLease reads a lease key's value, "<token> <host>".
func parseLease(meeting conference.MeetingID, v string, expires time.Time) (conference.Lease, error) {
	tok, host, ok := strings.Cut(v, " ")
	n, err := strconv.ParseUint(tok, 10, 64)
	if !ok || err != nil {
		return conference.Lease{}, fmt.Errorf("store: lease of %s: malformed %q", meeting, v)
	}
	return conference.Lease{Meeting: meeting, Host: host, Token: n, Expires: expires}, nil
}

// UpdateFenced implements conference.FencedMeetingStore: Update, under
// WATCH of the meeting's token counter too, refused if the counter has
// passed token.
func (s redisMeetings) UpdateFenced(ctx context.Context, id conference.MeetingID, token uint64, fn func(*conference.Meeting) error) (*conference.Meeting, error) {
	counter := redisLeases(s).keys(id)[1]
	return s.update(ctx, id, []string{counter}, func(tx *redis.Tx) error {
		newest, err := tx.Get(ctx, counter).Uint64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return redisErr(err)
		}
		if token < newest {
			return fmt.Errorf("%w: %s, token %d < %d", conference.ErrFenced, id, token, newest)
		}
		return nil
	}, fn)
}
