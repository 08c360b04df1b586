package auth

import (
	"container/list"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token-bucket rate: Rate requests per second on average, with
// bursts of up to Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// Default throttling limits, generous for people and their devices, tight
// for floods.
var (
	DefaultPerAddress = Limit{Rate: 20, Burst: 100}
	DefaultPerSubnet  = Limit{Rate: 100, Burst: 400}
	DefaultPerDomain  = Limit{Rate: 200, Burst: 800}
	// DefaultPerSender limits what one user may start with people who do
	// not have them as a contact (spim): a burst of 20, then one a minute.
	DefaultPerSender = Limit{Rate: 1.0 / 60, Burst: 20}
)

// DefaultThrottleKeys bounds how many sources a Throttle remembers.
const DefaultThrottleKeys = 100_000

// ThrottleConfig configures a [Throttle]. Zero fields take the defaults.
type ThrottleConfig struct {
	PerAddress Limit // per source IP address
	PerSubnet  Limit // per /24 (IPv4) or /64 (IPv6)
	PerDomain  Limit // per federated domain
	PerSender  Limit // per sender address of record, for AllowSender
	// MaxKeys bounds the number of buckets kept, all kinds together; the
	// least recently used are forgotten first. Default 100,000.
	MaxKeys int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Throttle limits requests from the same endpoints, subnets and federated
// domains with token buckets. Its memory is bounded: however many source
// addresses a flood uses, it keeps at most MaxKeys buckets. A bucket is
// forgotten only once it has refilled, so churning through many sources
// cannot hand a throttled source a fresh bucket; when every bucket is in
// use, new sources share one overflow bucket of each kind. It is safe for
// concurrent use.
type Throttle struct {
	cfg ThrottleConfig

	mu       sync.Mutex
	buckets  map[throttleKey]*list.Element
	lru      *list.List // of *bucket, most recently used at the front
	overflow map[byte]*rate.Limiter
}

// evictScan is how many of the least recently used buckets are examined
// for one that has refilled and can be forgotten.
const evictScan = 16

type throttleKey struct {
	kind   byte // 'a' address, 's' subnet, 'd' domain, 'u' sender
	prefix netip.Prefix
	domain string
}

type bucket struct {
	key     throttleKey
	limiter *rate.Limiter
}

// NewThrottle returns a Throttle, or an error naming an invalid field.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	for _, f := range []struct {
		name string
		l    *Limit
		def  Limit
	}{{"PerAddress", &cfg.PerAddress, DefaultPerAddress}, {"PerSubnet", &cfg.PerSubnet, DefaultPerSubnet},
		{"PerDomain", &cfg.PerDomain, DefaultPerDomain}, {"PerSender", &cfg.PerSender, DefaultPerSender}} {
		if *f.l == (Limit{}) {
			*f.l = f.def
		}
		if f.l.Rate <= 0 || f.l.Burst <= 0 {
			return nil, errors.New("auth: ThrottleConfig." + f.name + ": Rate and Burst must be positive")
		}
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultThrottleKeys
	}
	if cfg.MaxKeys < 3 {
		return nil, errors.New("auth: ThrottleConfig.MaxKeys must be at least 3")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Throttle{cfg: cfg, buckets: make(map[throttleKey]*list.Element), lru: list.New(), overflow: map[byte]*rate.Limiter{}}
	for _, kind := range []byte{'a', 's', 'd', 'u'} {
		l := t.limitFor(kind)
		t.overflow[kind] = rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
	}
	return t, nil
}

// Allow takes one token from the source address's bucket, its subnet's
// and, if domain is not empty (a request from a federated partner), the
// domain's. If any is empty it takes none and returns false with how long
// to wait before retrying.
func (t *Throttle) Allow(addr netip.Addr, domain string) (ok bool, retryAfter time.Duration) {
	addr = addr.Unmap()
	bits := 24
	if addr.Is6() {
		bits = 64
	}
	subnet, _ := addr.Prefix(bits)
	var kb [3]throttleKey // on the stack: Allow runs on every request
	keys := append(kb[:0],
		throttleKey{kind: 'a', prefix: netip.PrefixFrom(addr, addr.BitLen())},
		throttleKey{kind: 's', prefix: subnet})
	if domain != "" {
		keys = append(keys, throttleKey{kind: 'd', domain: strings.ToLower(domain)})
	}
	return t.allow(keys)
}

// AllowSender takes one token from the sender's bucket (PerSender) and,
// if domain is not empty (a federated sender), the domain's. It limits
// what a user may start with people who do not have them as a contact:
// new presence subscriptions and messages (spim).
func (t *Throttle) AllowSender(sender, domain string) (ok bool, retryAfter time.Duration) {
	var kb [2]throttleKey
	keys := append(kb[:0], throttleKey{kind: 'u', domain: strings.ToLower(sender)})
	if domain != "" {
		keys = append(keys, throttleKey{kind: 'd', domain: strings.ToLower(domain)})
	}
	return t.allow(keys)
}

// allow takes a token from every key's bucket (at most three), or from
// none.
func (t *Throttle) allow(keys []throttleKey) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	var taken [3]*rate.Reservation
	for i := range keys {
		r := t.limiterLocked(keys[i], now).ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			// Over the limit: give back what this request took from the
			// buckets before, so a refused request costs nothing.
			r.CancelAt(now)
			for j := range i {
				taken[j].CancelAt(now)
			}
			return false, d
		}
		taken[i] = r
	}
	return true, 0
}

// limiterLocked returns the bucket for key, creating it if there is room or
// a refilled bucket to forget, else the overflow bucket of its kind. The
// caller holds t.mu.
func (t *Throttle) limiterLocked(key throttleKey, now time.Time) *rate.Limiter {
	if e, ok := t.buckets[key]; ok {
		t.lru.MoveToFront(e)
		return e.Value.(*bucket).limiter
	}
	if t.lru.Len() >= t.cfg.MaxKeys {
		var victim *list.Element
		for e, i := t.lru.Back(), 0; e != nil && i < evictScan; e, i = e.Prev(), i+1 {
			b := e.Value.(*bucket)
			if b.limiter.TokensAt(now) >= float64(b.limiter.Burst()) {
				victim = e
				break
			}
		}
		if victim == nil {
			return t.overflow[key.kind]
		}
		t.lru.Remove(victim)
		delete(t.buckets, victim.Value.(*bucket).key)
	}
	l := t.limitFor(key.kind)
	b := &bucket{key: key, limiter: rate.NewLimiter(rate.Limit(l.Rate), l.Burst)}
	t.buckets[key] = t.lru.PushFront(b)
	return b.limiter
}

func (t *Throttle) limitFor(kind byte) Limit {
	switch kind {
	case 's':
		return t.cfg.PerSubnet
	case 'd':
		return t.cfg.PerDomain
	case 'u':
		return t.cfg.PerSender
	}
	return t.cfg.PerAddress
}

// Len returns how many buckets the Throttle holds.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
