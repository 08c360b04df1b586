package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RelaySecret is one of a pool's shared relay secrets (edge.Secrets):
// from Since on it signs new relay credentials on every front end, until
// the next one's Since; before Since the front ends only accept it
// (edge.Secrets.Accept), so that none refuses what another issues.
type RelaySecret struct {
	ID    string
	Key   []byte
	Since time.Time
}

// relaySecretsKept bounds the secrets the store keeps, newest first:
// enough for those still verifying credentials (eight hours at most)
// however often they rotate.
const relaySecretsKept = 8

// rotateRelaySecret answers the pool's secrets, newest first, after adding
// one if there is none (effective now) or the newest took effect at least
// a rotation period ago (effective after the lead time): KEYS the list of
// "<since ms> <id> <base64 key>"; ARGV now in ms, the period in ms, the
// entry effective now, the entry effective later, how many to keep.
var rotateRelaySecret = redis.NewScript(`
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  local since = tonumber(string.sub(head, 1, string.find(head, ' ', 1, true) - 1))
  if tonumber(ARGV[1]) - since < tonumber(ARGV[2]) then
    return redis.call('LRANGE', KEYS[1], 0, -1)
  end
  redis.call('LPUSH', KEYS[1], ARGV[4])
else
  redis.call('LPUSH', KEYS[1], ARGV[3])
end
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[5]) - 1)
return redis.call('LRANGE', KEYS[1], 0, -1)`)

// RotateRelaySecrets returns the pool's shared relay secrets, newest
// first, making a random one when the pool has none (effective at once)
// or when the newest took effect every or longer ago (effective lead
// from now, so that every front end, reading them more often than that,
// accepts it before any signs with it). Front ends racing add one secret,
// not several.
func (r *Redis) RotateRelaySecrets(ctx context.Context, every, lead time.Duration) ([]RelaySecret, error) {
	switch {
	case every <= 0:
		return nil, errors.New("store: RotateRelaySecrets: every must be positive")
	case lead < 0 || lead >= every:
		return nil, errors.New("store: RotateRelaySecrets: lead must be at least 0 and under every")
	}
	now := time.Now()
	key := make([]byte, 32)
	id := make([]byte, 6)
	_, _ = rand.Read(key)
	_, _ = rand.Read(id)
	entry := func(since time.Time) string {
		return strconv.FormatInt(since.UnixMilli(), 10) + " " + hex.EncodeToString(id) + " " + base64.StdEncoding.EncodeToString(key)
	}
	res, err := rotateRelaySecret.Run(ctx, r.c, []string{r.key("relay-secrets")}, now.UnixMilli(), every.Milliseconds(),
		entry(now), entry(now.Add(lead)), relaySecretsKept).StringSlice()
	if err != nil {
		return nil, redisErr(err)
	}
	out := make([]RelaySecret, 0, len(res))
	for _, e := range res {
		f := strings.SplitN(e, " ", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("store: a relay secret unreadable in the store")
		}
		ms, err1 := strconv.ParseInt(f[0], 10, 64)
		k, err2 := base64.StdEncoding.DecodeString(f[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("store: a relay secret unreadable in the store")
		}
		out = append(out, RelaySecret{ID: f[1], Key: k, Since: time.UnixMilli(ms)})
	}
	return out, nil
}
