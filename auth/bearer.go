package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/time/rate"
)

// OIDCProvider is an OpenID Connect provider whose access tokens the
// Authenticator accepts as bearer tokens.
type OIDCProvider struct {
	// Issuer is the provider's issuer URL; its discovery document is at
	// Issuer + "/.well-known/openid-configuration". Required.
	Issuer string
	// Audience is the value the token's aud claim must contain (the client
	// ID or resource registered for Parley). Required.
	Audience string
	// UserClaim names the claim that holds the user's address of record
	// as user@domain (for example "email", "upn" or "preferred_username").
	// Default "email".
	UserClaim string
	// KeyRefresh is how often the provider's JWKS is fetched again, so that
	// keys the provider has removed stop being accepted. A token signed with
	// a key not yet seen triggers a fetch at once. Default 15 minutes.
	KeyRefresh time.Duration
	// MaxClockSkew is how long after its expiry a token is still accepted,
	// to absorb clock differences. Default 1 minute; at most 5 minutes.
	// (go-oidc allows 5 minutes for a not-before time in the future.)
	MaxClockSkew time.Duration
	// Domains, if set, are the tenant domains this provider may assert
	// users of; a token naming a user of another domain is refused. Set it
	// when a provider serves more than one organization.
	Domains []string
	// HTTPClient fetches discovery and keys. Default: a client with a 10 s
	// timeout.
	HTTPClient *http.Client
}

// FIPS-approved JWS algorithms (FIPS 186-5 signatures with SHA-2).
var approvedJWSAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
}

// ErrInvalidToken wraps every reason a bearer token is refused.
var ErrInvalidToken = errors.New("auth: invalid bearer token")

// bearer verifies the tokens of one provider.
type bearer struct {
	cfg      OIDCProvider
	ctx      context.Context // for key fetches; canceled when the Authenticator closes
	jwksURL  string
	verifier atomic.Pointer[oidc.IDTokenVerifier]
	now      func() time.Time

	// A token whose key ID has not verified since the last refresh makes
	// go-oidc fetch the JWKS; unknownKeys bounds how often, so tokens with
	// made-up key IDs cannot turn every request into a fetch.
	knownKeys   sync.Map // key ID -> struct{}
	unknownKeys *rate.Limiter
}

func newBearer(ctx context.Context, cfg OIDCProvider, now func() time.Time) (*bearer, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("auth: OIDCProvider.Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("auth: OIDCProvider.Audience is required")
	case cfg.MaxClockSkew < 0 || cfg.MaxClockSkew > 5*time.Minute:
		return nil, errors.New("auth: OIDCProvider.MaxClockSkew must be between 0 and 5 minutes")
	case cfg.KeyRefresh < 0:
		return nil, errors.New("auth: OIDCProvider.KeyRefresh must be positive")
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "email"
	}
	if cfg.KeyRefresh == 0 {
		cfg.KeyRefresh = 15 * time.Minute
	}
	if cfg.MaxClockSkew == 0 {
		cfg.MaxClockSkew = time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("auth: OIDC provider %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("auth: OIDC provider %s: discovery has no jwks_uri", cfg.Issuer)
	}
	b := &bearer{cfg: cfg, ctx: ctx, jwksURL: meta.JWKSURL, now: now,
		unknownKeys: rate.NewLimiter(rate.Every(time.Second), 5)}
	b.refreshKeys()
	return b, nil
}

// refreshKeys replaces the key set with a fresh one, dropping every cached
// key: the next verification fetches the provider's current JWKS.
func (b *bearer) refreshKeys() {
	keys := oidc.NewRemoteKeySet(b.ctx, b.jwksURL)
	b.verifier.Store(oidc.NewVerifier(b.cfg.Issuer, keys, &oidc.Config{
		ClientID:             b.cfg.Audience,
		SupportedSigningAlgs: approvedJWSAlgs,
		Now:                  b.now,
		SkipExpiryCheck:      true, // checked in verify, with the skew
	}))
	b.knownKeys.Clear()
}

// verify checks a raw token and returns the user's address of record from
// the configured claim, and the token's expiry.
func (b *bearer) verify(ctx context.Context, raw string) (aor string, expires time.Time, err error) {
	kid := unverifiedKeyID(raw)
	if _, known := b.knownKeys.Load(kid); !known && !b.unknownKeys.Allow() {
		return "", time.Time{}, fmt.Errorf("%w: unknown key ID %q (key fetches rate-limited)", ErrInvalidToken, kid)
	}
	tok, err := b.verifier.Load().Verify(ctx, raw)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	b.knownKeys.Store(kid, struct{}{})
	if tok.Expiry.IsZero() || b.now().After(tok.Expiry.Add(b.cfg.MaxClockSkew)) {
		return "", time.Time{}, fmt.Errorf("%w: expired at %s", ErrInvalidToken, tok.Expiry.UTC().Format(time.RFC3339))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	v, _ := claims[b.cfg.UserClaim].(string)
	if v == "" {
		return "", time.Time{}, fmt.Errorf("%w: no %q claim", ErrInvalidToken, b.cfg.UserClaim)
	}
	if b.cfg.UserClaim == "email" {
		// An address the provider has not verified proves nothing; some
		// providers send the flag as a string.
		if ev := claims["email_verified"]; ev != true && ev != "true" {
			return "", time.Time{}, fmt.Errorf("%w: email not verified", ErrInvalidToken)
		}
	}
	if len(b.cfg.Domains) > 0 && !slices.ContainsFunc(b.cfg.Domains, func(d string) bool { return strings.EqualFold(d, hostOf(v)) }) {
		return "", time.Time{}, fmt.Errorf("%w: provider may not assert users of %s", ErrInvalidToken, hostOf(v))
	}
	return v, tok.Expiry, nil
}

// unverifiedKeyID reads the kid of a JWT's header without verifying it.
func unverifiedKeyID(raw string) string {
	head, _, ok := strings.Cut(raw, ".")
	if !ok || len(head) > 1024 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it, only
// to choose which provider will verify it.
func unverifiedIssuer(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(parts[1]) > maxAuthHeader {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.Iss
}
