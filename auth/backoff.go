package auth

import (
	"container/list"
	"errors"
	"net/netip"
	"sync"
	"time"
)

// Default backoff settings: three free failures, then a wait that doubles
// from one second up to five minutes.
const (
	DefaultBackoffFree = 3
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 5 * time.Minute
)

// BackoffConfig configures a [Backoff]. Zero fields take the defaults.
type BackoffConfig struct {
	// Free is how many failures a key may have before it must wait.
	// Default 3.
	Free int
	// Base is the first wait; each further failure doubles it. Default 1 s.
	Base time.Duration
	// Max bounds the wait. A key with no failure for Max starts afresh.
	// Default 5 minutes.
	Max time.Duration
	// MaxKeys bounds how many keys are remembered; the least recently
	// failed are forgotten first. Default 100,000.
	MaxKeys int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Backoff makes repeated failures wait: after Free failures of one key, a
// key must wait Base, then twice as long after each further failure, up
// to Max. Keys are whatever the caller chooses to hold apart, such as a
// meeting and a source address, so that one source's failures never slow
// another's. Its memory is bounded by MaxKeys. It is safe for concurrent
// use.
type Backoff struct {
	cfg BackoffConfig

	mu   sync.Mutex
	keys map[string]*list.Element
	lru  *list.List // of *backoffEntry, most recently failed at the front
}

type backoffEntry struct {
	key      string
	failures int
	last     time.Time // the latest failure
	until    time.Time // no attempt before this
}

// NewBackoff returns a Backoff, or an error naming an invalid field.
func NewBackoff(cfg BackoffConfig) (*Backoff, error) {
	if cfg.Free == 0 {
		cfg.Free = DefaultBackoffFree
	}
	if cfg.Base == 0 {
		cfg.Base = DefaultBackoffBase
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultBackoffMax
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultThrottleKeys
	}
	switch {
	case cfg.Free < 0:
		return nil, errors.New("auth: BackoffConfig.Free must not be negative")
	case cfg.Base < 0:
		return nil, errors.New("auth: BackoffConfig.Base must be positive")
	case cfg.Max < cfg.Base:
		return nil, errors.New("auth: BackoffConfig.Max must be at least Base")
	case cfg.MaxKeys < 1:
		return nil, errors.New("auth: BackoffConfig.MaxKeys must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Backoff{cfg: cfg, keys: make(map[string]*list.Element), lru: list.New()}, nil
}

// Wait returns how long key must still wait before its next attempt; zero
// if it may try now.
func (b *Backoff) Wait(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.keys[key]
	if !ok {
		return 0
	}
	return max(0, e.Value.(*backoffEntry).until.Sub(b.cfg.Now()))
}

// Fail records a failure of key and returns how long it must now wait.
func (b *Backoff) Fail(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	var be *backoffEntry
	if e, ok := b.keys[key]; ok {
		b.lru.MoveToFront(e)
		be = e.Value.(*backoffEntry)
		if now.Sub(be.last) > b.cfg.Max {
			be.failures = 0 // long quiet: start afresh
		}
	} else {
		if b.lru.Len() >= b.cfg.MaxKeys {
			b.evictLocked(now)
		}
		be = &backoffEntry{key: key}
		b.keys[key] = b.lru.PushFront(be)
	}
	be.failures++
	be.last = now
	if n := be.failures - b.cfg.Free; n > 0 {
		d := b.cfg.Max
		if n <= 30 && b.cfg.Base<<(n-1) < b.cfg.Max {
			d = b.cfg.Base << (n - 1)
		}
		be.until = now.Add(d)
	}
	return max(0, be.until.Sub(now))
}

// Succeed forgets key's failures: the key (and only it) starts afresh.
func (b *Backoff) Succeed(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.keys[key]; ok {
		b.lru.Remove(e)
		delete(b.keys, key)
	}
}

// evictLocked forgets one key: among the least recently failed, one whose
// failures have lapsed if there is one, else the least recently failed.
func (b *Backoff) evictLocked(now time.Time) {
	victim := b.lru.Back()
	for e, i := b.lru.Back(), 0; e != nil && i < evictScan; e, i = e.Prev(), i+1 {
		if now.Sub(e.Value.(*backoffEntry).last) > b.cfg.Max {
			victim = e
			break
		}
	}
	if victim != nil {
		b.lru.Remove(victim)
		delete(b.keys, victim.Value.(*backoffEntry).key)
	}
}

// Len returns how many keys the Backoff remembers.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lru.Len()
}

// SourceKey names a source address for limits kept per source (a
// Backoff's keys, the connection caps of ConnLimits): the address itself
// for IPv4, its /64 for IPv6 (one host's share of a network, which it can
// fill with addresses at will).
func SourceKey(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// keyBackoffKey is what wrong conference keys are counted against: the
// meeting and the source, so that a guesser from one source never slows
// the right key from another. A guest coming through an Access Edge is
// known by its connection to the edge (EdgeFlowHeader), the edge's own
// address being shared by every remote guest.
func (a *Authenticator) keyBackoffKey(meeting string, at *attempt) string {
	if at.throughEdge {
		return meeting + "\x00flow\x00" + at.edgeFlow
	}
	return meeting + "\x00" + SourceKey(at.source)
}
