package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Credentials parsing limits: a header longer than this, or with more
// parameters, is refused before any work is done on it.
const (
	maxAuthHeader = 8 << 10
	maxAuthParams = 32
)

// ErrMalformedCredentials is returned for an Authorization header that
// cannot be parsed.
var ErrMalformedCredentials = errors.New("auth: malformed credentials")

// authHeader is a parsed Authorization / WWW-Authenticate value
// (RFC 7235 section 2.1): a scheme and either a token68 (Bearer) or
// auth-params (Digest).
type authHeader struct {
	Scheme  string
	Token68 string
	Params  map[string]string // names lower-cased
}

// parseAuthHeader parses one credentials or challenge value.
func parseAuthHeader(v string) (*authHeader, error) {
	if len(v) > maxAuthHeader {
		return nil, fmt.Errorf("%w: header over %d bytes", ErrMalformedCredentials, maxAuthHeader)
	}
	v = strings.TrimSpace(v)
	sp := strings.IndexAny(v, " \t")
	if sp < 0 {
		if !isToken(v) {
			return nil, fmt.Errorf("%w: bad scheme", ErrMalformedCredentials)
		}
		return &authHeader{Scheme: v}, nil
	}
	h := &authHeader{Scheme: v[:sp]}
	if !isToken(h.Scheme) {
		return nil, fmt.Errorf("%w: bad scheme", ErrMalformedCredentials)
	}
	rest := strings.TrimLeft(v[sp:], " \t")
	if isToken68(rest) {
		h.Token68 = rest
		return h, nil
	}
	h.Params = make(map[string]string)
	for rest != "" {
		if len(h.Params) == maxAuthParams {
			return nil, fmt.Errorf("%w: more than %d parameters", ErrMalformedCredentials, maxAuthParams)
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: parameter without a value", ErrMalformedCredentials)
		}
		name := strings.ToLower(strings.TrimSpace(rest[:eq]))
		if !isToken(name) {
			return nil, fmt.Errorf("%w: bad parameter name %q", ErrMalformedCredentials, name)
		}
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					b.WriteByte(rest[i])
					continue
				}
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			if i >= len(rest) {
				return nil, fmt.Errorf("%w: unterminated quoted string", ErrMalformedCredentials)
			}
			val, rest = b.String(), rest[i+1:]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
			if !isToken(val) {
				return nil, fmt.Errorf("%w: bad value for %s", ErrMalformedCredentials, name)
			}
		}
		if _, dup := h.Params[name]; dup {
			return nil, fmt.Errorf("%w: parameter %s repeated", ErrMalformedCredentials, name)
		}
		h.Params[name] = val
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("%w: expected a comma after %s", ErrMalformedCredentials, name)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	return h, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// isToken68 reports whether s is an RFC 7235 token68 (the form of a Bearer
// token), which cannot be confused with auth-params because it has no '='
// except as trailing padding.
func isToken68(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// quote renders s as an RFC 7230 quoted-string.
func quote(s string) string {
	return `"` + quoteEscaper.Replace(s) + `"`
}

// digestChallenge renders a Digest challenge value.
func digestChallenge(realm, nonce, alg string, stale bool) string {
	var b strings.Builder
	b.WriteString("Digest realm=")
	b.WriteString(quote(realm))
	b.WriteString(", nonce=")
	b.WriteString(quote(nonce))
	b.WriteString(", algorithm=")
	b.WriteString(alg)
	b.WriteString(`, qop="auth"`)
	if stale {
		b.WriteString(", stale=true")
	}
	return b.String()
}

// digestResponse computes the RFC 7616 section 3.4.1 response for qop=auth.
func digestResponse(alg, ha1, nonce, nc, cnonce, method, uri string) string {
	ha2 := digestHash(alg, method+":"+uri)
	return digestHash(alg, ha1+":"+nonce+":"+nc+":"+cnonce+":auth:"+ha2)
}

// nonces mints and checks stateless Digest nonces: issue time and random
// bytes, MACed with a server key, so that any front end sharing the key can
// check them without shared state. Replay is stopped by nonce counts: each
// (nonce, nc) is accepted once and nc must grow.
type nonces struct {
	key [32]byte
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	counts  map[string]nonceCount // last nc seen per nonce
	max     int
	floorNs int64 // nonces issued before this are stale: their counts may have been evicted
}

type nonceCount struct {
	nc     uint64
	issued int64
}

const nonceRawLen = 8 + 8 + 16 // issue time, random, MAC

func newNonces(ttl time.Duration, max int, now func() time.Time) *nonces {
	n := &nonces{ttl: ttl, now: now, counts: make(map[string]nonceCount), max: max}
	_, _ = rand.Read(n.key[:])
	return n
}

func (n *nonces) mac(b []byte) []byte {
	m := hmac.New(sha256.New, n.key[:])
	m.Write(b)
	return m.Sum(nil)[:16]
}

// mint returns a fresh nonce.
func (n *nonces) mint() string {
	var b [nonceRawLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(n.now().UnixNano()))
	_, _ = rand.Read(b[8:16])
	copy(b[16:], n.mac(b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// nonceState is the verdict on a presented nonce.
type nonceState int

const (
	nonceValid   nonceState = iota
	nonceStale              // ours, but expired: challenge again with stale=true
	nonceInvalid            // not ours
)

// check verifies a nonce's MAC and age.
func (n *nonces) check(nonce string) (nonceState, int64) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceRawLen || subtle.ConstantTimeCompare(n.mac(b[:16]), b[16:]) != 1 {
		return nonceInvalid, 0
	}
	issued := int64(binary.BigEndian.Uint64(b[:8]))
	age := n.now().UnixNano() - issued
	if age < 0 || time.Duration(age) > n.ttl {
		return nonceStale, issued
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if issued < n.floorNs {
		return nonceStale, issued
	}
	return nonceValid, issued
}

// use records nonce-count nc for a valid nonce; it fails if nc does not
// grow, which is how a replayed Authorization is recognized.
func (n *nonces) use(nonce string, issued int64, nc uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if issued < n.floorNs {
		return false
	}
	if last, ok := n.counts[nonce]; ok && nc <= last.nc {
		return false
	}
	if _, ok := n.counts[nonce]; !ok && len(n.counts) >= n.max {
		n.evictLocked()
	}
	n.counts[nonce] = nonceCount{nc: nc, issued: issued}
	return true
}

// evictLocked drops expired counts, and if the table is still full, the
// oldest half, raising the floor so the evicted nonces count as stale
// rather than as unused.
func (n *nonces) evictLocked() {
	cutoff := n.now().Add(-n.ttl).UnixNano()
	for k, v := range n.counts {
		if v.issued < cutoff {
			delete(n.counts, k)
		}
	}
	if len(n.counts) < n.max {
		return
	}
	issued := make([]int64, 0, len(n.counts))
	for _, v := range n.counts {
		issued = append(issued, v.issued)
	}
	median := quickSelect(issued, len(issued)/2)
	for k, v := range n.counts {
		if v.issued <= median {
			delete(n.counts, k)
		}
	}
	n.floorNs = max(n.floorNs, median+1)
}

// quickSelect returns the k-th smallest value of s (reordering s).
func quickSelect(s []int64, k int) int64 {
	lo, hi := 0, len(s)-1
	for lo < hi {
		p := s[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for s[i] < p {
				i++
			}
			for s[j] > p {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		if k <= j {
			hi = j
		} else if k >= i {
			lo = i
		} else {
			return s[k]
		}
	}
	return s[k]
}

// parseNC parses a nonce-count: exactly 8 hex digits (RFC 7616).
func parseNC(s string) (uint64, bool) {
	if len(s) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return v, err == nil && v > 0
}
