package edge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST API and its clients use; HMAC-SHA1 is FIPS-approved
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxCredentialLifetime caps relay credentials: "machine-generated and
// live at most eight hours".
const MaxCredentialLifetime = 8 * time.Hour

// Credential is what a signed-in user gets to use the relay: a user name
// and password in the TURN REST API form (draft-uberti-behave-turn-rest),
// valid until Expires, and the relay's TURN URIs.
type Credential struct {
	Username string    `json:"username"`
	Password string    `json:"password"`
	TTL      int       `json:"ttl"` // seconds
	Expires  time.Time `json:"expires"`
	URIs     []string  `json:"uris"`
}

// Secrets holds the relay's shared secrets: the current one signs new
// credentials; after Rotate the ones it replaced still verify for a grace
// period (by default MaxCredentialLifetime, so no issued credential breaks
// early, however often secrets rotate; up to 16 are kept). Each secret
// has an ID carried in the user name. It is safe for concurrent use.
type Secrets struct {
	mu       sync.RWMutex
	current  secret
	previous []retired            // newest first
	next     []secret             // accepted, not yet current (Accept)
	revoked  map[string]time.Time // user -> when Revoke was called
	grace    time.Duration
	now      func() time.Time
}

type secret struct {
	id  string
	key []byte
}

// retired is a rotated-out secret, which verifies until a grace period
// after it was replaced.
type retired struct {
	secret
	until time.Time
}

// maxRetired bounds the rotated-out secrets kept.
const maxRetired = 16

// NewSecrets returns Secrets with a random 256-bit secret. grace (0:
// MaxCredentialLifetime) is how long a rotated-out secret still verifies;
// now may be nil (time.Now).
func NewSecrets(grace time.Duration, now func() time.Time) *Secrets {
	if grace == 0 {
		grace = MaxCredentialLifetime
	}
	if now == nil {
		now = time.Now
	}
	s := &Secrets{grace: grace, now: now}
	s.current = newSecret()
	return s
}

func newSecret() secret {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return secret{id: fmt.Sprintf("%x", id), key: k}
}

// SetSecret makes key, with ID id (letters and digits, not used before,
// or accepted with the same key by Accept), the current secret, as a
// deployment sharing one secret among relays does; the secrets it
// replaces verify for the grace period.
func (s *Secrets) SetSecret(id string, key []byte) error {
	if err := validSecret(id, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	i, err := s.acceptedLocked(id, key, now)
	if err != nil {
		return err
	}
	if i >= 0 {
		s.next = slices.Delete(s.next, i, i+1)
	}
	kept := []retired{{secret: s.current, until: now.Add(s.grace)}}
	for _, r := range s.previous {
		if now.Before(r.until) && len(kept) < maxRetired {
			kept = append(kept, r)
		}
	}
	s.previous = kept
	s.current = secret{id: id, key: append([]byte(nil), key...)}
	return nil
}

// acceptedLocked checks that id names neither the current secret nor one
// still retiring, and returns its index among the accepted ones (Accept),
// -1 if it is not one, or an error if it was accepted with another key.
// s.mu is held.
func (s *Secrets) acceptedLocked(id string, key []byte, now time.Time) (int, error) {
	if id == s.current.id || slices.ContainsFunc(s.previous, func(r retired) bool { return r.id == id && now.Before(r.until) }) {
		return -1, fmt.Errorf("edge: secret ID %q is in use", id)
	}
	i := slices.IndexFunc(s.next, func(n secret) bool { return n.id == id })
	if i >= 0 && !hmac.Equal(s.next[i].key, key) {
		return -1, fmt.Errorf("edge: secret ID %q was accepted with another key", id)
	}
	return i, nil
}

// validSecret checks a secret's ID and key.
func validSecret(id string, key []byte) error {
	if len(key) < 16 {
		return errors.New("edge: a relay secret needs at least 128 bits")
	}
	if id == "" || strings.ContainsFunc(id, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
	}) {
		return fmt.Errorf("edge: secret ID %q: letters and digits only", id)
	}
	return nil
}

// Accept adds key, with ID id (letters and digits, not used before), as
// a secret that verifies credentials but signs none until SetSecret makes
// it current: the pool's next shared secret, which every relay of a pool
// accepts before any signs with it, so no relay refuses a credential
// another issued. Accepting the same ID and key again does nothing; at
// most 16 secrets wait.
func (s *Secrets) Accept(id string, key []byte) error {
	if err := validSecret(id, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if i, err := s.acceptedLocked(id, key, now); err != nil || i >= 0 {
		return err // in use, or accepted already
	}
	if len(s.next) >= maxRetired {
		return errors.New("edge: 16 accepted secrets wait already")
	}
	s.next = append(s.next, secret{id: id, key: append([]byte(nil), key...)})
	return nil
}

// Rotate replaces the current secret with a random one.
func (s *Secrets) Rotate() {
	n := newSecret()
	_ = s.SetSecret(n.id, n.key)
}

// Issue returns a credential for user valid for ttl, capped at
// MaxCredentialLifetime whatever is asked. The user name is
// "<expiry unix time>:<secret ID>.<issue unix milliseconds>:<user>" and
// the password base64(HMAC-SHA1(secret, user name)); the issue time lets
// Revoke refuse what was issued before it and nothing after.
func (s *Secrets) Issue(user string, ttl time.Duration) Credential {
	if ttl <= 0 || ttl > MaxCredentialLifetime {
		ttl = MaxCredentialLifetime
	}
	ttl = ttl.Truncate(time.Second)
	exp := s.now().Add(ttl).Truncate(time.Second)
	s.mu.RLock()
	sec := s.current
	s.mu.RUnlock()
	name := strconv.FormatInt(exp.Unix(), 10) + ":" + sec.id + "." + strconv.FormatInt(s.now().UnixMilli(), 10) + ":" + user
	return Credential{Username: name, Password: password(sec.key, name), TTL: int(ttl / time.Second), Expires: exp}
}

func password(key []byte, username string) string {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Errors of Secrets.Password.
var (
	ErrCredentialExpired = errors.New("edge: relay credential expired")
	ErrCredentialInvalid = errors.New("edge: relay credential invalid")
	ErrCredentialRevoked = errors.New("edge: relay credential revoked")
)

// Revoke makes every credential issued to user until now fail: a user
// disabled, deleted or signed out keeps no relay access through what was
// handed out before (EdgeRelay.CloseUser ends their allocations).
// Credentials issued afterwards work. A credential of the plain REST API
// form, which carries no issue time, fails if it may have been issued
// before Revoke (its expiry is within MaxCredentialLifetime of it).
func (s *Secrets) Revoke(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.revoked == nil {
		s.revoked = map[string]time.Time{}
	}
	for u, at := range s.revoked { // what they refuse has expired
		if now.Sub(at) > MaxCredentialLifetime+time.Minute {
			delete(s.revoked, u)
		}
	}
	s.revoked[user] = now
}

// Password returns the password of a user name this relay issued, and the
// user it names, refusing user names that have expired, that claim to last
// beyond MaxCredentialLifetime from now, or that name an unknown or
// retired secret.
//
// The plain REST API form "<expiry>:<user>", which tools that hold the
// shared secret compute themselves (coturn's turnutils_uclient -W), is
// verified with the current secret.
func (s *Secrets) Password(username string) (pass, user string, err error) {
	parts := strings.SplitN(username, ":", 3)
	if len(parts) == 2 {
		s.mu.RLock()
		id := s.current.id
		s.mu.RUnlock()
		parts = []string{parts[0], id, parts[1]}
	}
	if len(parts) != 3 {
		return "", "", ErrCredentialInvalid
	}
	exp, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return "", "", ErrCredentialInvalid
	}
	now := s.now()
	switch expires := time.Unix(exp, 0); {
	case !now.Before(expires):
		return "", "", ErrCredentialExpired
	case expires.Sub(now) > MaxCredentialLifetime+time.Minute: // a minute for clocks
		return "", "", fmt.Errorf("%w: lifetime over %v", ErrCredentialInvalid, MaxCredentialLifetime)
	}
	id, issuedMs, hasIssued := strings.Cut(parts[1], ".")
	issued := time.Unix(exp, 0).Add(-MaxCredentialLifetime) // the earliest it can have been issued
	if hasIssued {
		ms, err := strconv.ParseInt(issuedMs, 10, 64)
		if err != nil {
			return "", "", ErrCredentialInvalid
		}
		issued = time.UnixMilli(ms)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if at, ok := s.revoked[parts[2]]; ok && !issued.After(at) {
		return "", "", ErrCredentialRevoked
	}
	if id == s.current.id {
		return password(s.current.key, username), parts[2], nil
	}
	for _, r := range s.previous {
		if id == r.id && now.Before(r.until) {
			return password(r.key, username), parts[2], nil
		}
	}
	for _, n := range s.next {
		if id == n.id {
			return password(n.key, username), parts[2], nil
		}
	}
	return "", "", fmt.Errorf("%w: unknown secret", ErrCredentialInvalid)
}
