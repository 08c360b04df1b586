package conference

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Errors of media token verification. Every refusal wraps ErrBadToken.
var (
	ErrBadToken     = errors.New("conference: media token refused")
	errTokenExpired = fmt.Errorf("%w: expired", ErrBadToken)
)

// MediaClaims are what a media token grants: one participant of one
// meeting, in one role, until it expires.
type MediaClaims struct {
	Meeting     MeetingID     `json:"mtg"`
	Participant ParticipantID `json:"pid"`
	// Subject is the participant's identity URI (an anonymous user's is
	// per security association).
	Subject string `json:"sub"`
	Role    string `json:"role"`
	// Binding, when set, is the fingerprint of the participant's DTLS
	// certificate as it gave it in its add-user request (proof of
	// possession: the token is useless on another connection).
	Binding string `json:"cnf,omitempty"`
	Issued  int64  `json:"iat"`
	Expires int64  `json:"exp"`
	Nonce   string `json:"jti"`
}

// LobbyRole is the role in the media token of a participant waiting in
// the lobby: the media server plays it the lobby's music and neither
// sends it the meeting's media nor forwards its own until the focus
// admits it.
const LobbyRole = "lobby"

// tokenPrefix versions the token format.
const tokenPrefix = "pmt1."

// maxTokenSize bounds what Verify parses.
const maxTokenSize = 2048

// TokenIssuer signs and verifies media tokens with HMAC-SHA256 under a
// secret it shares with the media server. Keys rotate: after Rotate,
// tokens signed with the previous key stay valid until they expire, and
// no longer: the previous key verifies nothing issued later than the
// longest lifetime this issuer has given. It is safe for concurrent use.
type TokenIssuer struct {
	mu        sync.RWMutex
	current   []byte
	previous  []byte
	prevUntil time.Time     // the previous key verifies until then
	maxTTL    time.Duration // the longest lifetime issued
	now       func() time.Time
}

// NewTokenIssuer returns an issuer with the given key (at least 32
// bytes), or with a random key if key is nil. now may be nil (time.Now).
func NewTokenIssuer(key []byte, now func() time.Time) (*TokenIssuer, error) {
	if key == nil {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	if len(key) < 32 {
		return nil, errors.New("conference: a media token key needs at least 32 bytes")
	}
	if now == nil {
		now = time.Now
	}
	return &TokenIssuer{current: append([]byte(nil), key...), now: now}, nil
}

// Rotate makes key the signing key; the previous key still verifies.
func (ti *TokenIssuer) Rotate(key []byte) error {
	if len(key) < 32 {
		return errors.New("conference: a media token key needs at least 32 bytes")
	}
	ti.mu.Lock()
	ti.previous, ti.current = ti.current, append([]byte(nil), key...)
	ti.prevUntil = ti.now().Add(ti.maxTTL)
	ti.mu.Unlock()
	return nil
}

// Issue signs claims valid for ttl from now and returns the token.
func (ti *TokenIssuer) Issue(c MediaClaims, ttl time.Duration) string {
	now := ti.now()
	c.Issued, c.Expires = now.Unix(), now.Add(ttl).Unix()
	var n [12]byte
	_, _ = rand.Read(n[:])
	c.Nonce = base64.RawURLEncoding.EncodeToString(n[:])
	payload, _ := json.Marshal(c)
	signed := tokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	ti.mu.Lock()
	ti.maxTTL = max(ti.maxTTL, ttl)
	mac := sign(ti.current, signed)
	ti.mu.Unlock()
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac)
}

func sign(key []byte, s string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(s))
	return h.Sum(nil)
}

// Verify checks token and that it was issued for want's meeting and
// participant (and subject and binding, where want gives them), and
// returns its claims. The media server calls it before answering any
// offer, with what it knows of the connection presenting the token.
func (ti *TokenIssuer) Verify(token string, want MediaClaims) (*MediaClaims, error) {
	if len(token) > maxTokenSize || !strings.HasPrefix(token, tokenPrefix) {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	dot := strings.LastIndexByte(token, '.')
	if dot < len(tokenPrefix) {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	signed, macText := token[:dot], token[dot+1:]
	mac, err := base64.RawURLEncoding.DecodeString(macText)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	ti.mu.RLock()
	ok := hmac.Equal(mac, sign(ti.current, signed)) ||
		ti.previous != nil && ti.now().Before(ti.prevUntil) && hmac.Equal(mac, sign(ti.previous, signed))
	ti.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: bad signature", ErrBadToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(signed[len(tokenPrefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	var c MediaClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrBadToken)
	}
	switch {
	case !ti.now().Before(time.Unix(c.Expires, 0)):
		return nil, errTokenExpired
	case c.Meeting != want.Meeting:
		return nil, fmt.Errorf("%w: issued for another meeting", ErrBadToken)
	case c.Participant != want.Participant:
		return nil, fmt.Errorf("%w: issued to another participant", ErrBadToken)
	case want.Subject != "" && c.Subject != want.Subject:
		return nil, fmt.Errorf("%w: issued to another user", ErrBadToken)
	case c.Binding != "" && !strings.EqualFold(c.Binding, want.Binding):
		return nil, fmt.Errorf("%w: bound to another connection", ErrBadToken)
	}
	return &c, nil
}
