package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
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
	// Domains are the tenant domains this provider signs users in for; a
	// token naming a user of another domain is refused. These tenants'
	// users sign in with the provider: Digest sign-in is off for them
	// unless their Tenant or User has PasswordSignIn (guests with a
	// conference key keep Digest), and their Bearer challenge names this
	// provider. Empty: the provider may assert users of any tenant and
	// changes no tenant's sign-in methods.
	Domains []string
	// UserDomain, if set, is the SIP domain of the users the provider
	// names: the address of record is the user part of UserClaim's value
	// (the part before any @) at UserDomain, for providers whose user
	// names (a upn such as alice@corp.onmicrosoft.com) are not SIP
	// addresses. Empty: the claim's value is the address of record.
	UserDomain string
	// Scopes are the scopes a token must carry (in its space-separated
	// scope claim or its scp claim); the Bearer challenge names them
	// (RFC 8898 section 4). A token without them is refused with
	// insufficient_scope (RFC 6750 section 3.1). Empty: none required.
	Scopes []string
	// LicenseClaim and LicenseValue, if set, grant the meeting license
	// (Identity.MeetingLicense) to a user whose token's LicenseClaim is
	// LicenseValue or, for a list (groups, roles), contains it, besides
	// those whose directory entry has User.MeetingLicense. Unset: the
	// directory alone decides.
	LicenseClaim, LicenseValue string
	// AdminClaim and AdminValue, if set, make a user whose token's
	// AdminClaim is or contains AdminValue a tenant admin
	// (Identity.TenantAdmin). Unset: no token makes anyone an admin.
	AdminClaim, AdminValue string
	// CheckUserInfo asks the provider's userinfo endpoint about each token
	// before accepting it, so a user the provider has disabled is refused
	// although their token has not expired (one request per sign-in and
	// per refreshing REGISTER), and asks again about the token of every
	// connection signed in with one each UserInfoInterval: a connection
	// whose token the provider refuses is closed, signing the device out.
	// A provider that cannot be reached signs nobody out.
	CheckUserInfo bool
	// UserInfoInterval is how often, with CheckUserInfo, signed-in
	// connections' tokens are checked again. Default 1 minute.
	UserInfoInterval time.Duration
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
	op       *oidc.Provider
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
	case cfg.UserInfoInterval < 0:
		return nil, errors.New("auth: OIDCProvider.UserInfoInterval must be positive")
	case (cfg.LicenseClaim == "") != (cfg.LicenseValue == ""):
		return nil, errors.New("auth: OIDCProvider.LicenseClaim and LicenseValue go together")
	case (cfg.AdminClaim == "") != (cfg.AdminValue == ""):
		return nil, errors.New("auth: OIDCProvider.AdminClaim and AdminValue go together")
	case strings.ContainsAny(cfg.UserDomain, "@:;/ "):
		return nil, fmt.Errorf("auth: OIDCProvider.UserDomain: invalid %q", cfg.UserDomain)
	}
	for i, d := range cfg.Domains {
		if d == "" || strings.ContainsAny(d, "@:;/ ") {
			return nil, fmt.Errorf("auth: OIDCProvider.Domains[%d]: invalid %q", i, d)
		}
	}
	for i, sc := range cfg.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \"\\") {
			return nil, fmt.Errorf("auth: OIDCProvider.Scopes[%d]: invalid %q", i, sc)
		}
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "email"
	}
	if cfg.KeyRefresh == 0 {
		cfg.KeyRefresh = 15 * time.Minute
	}
	if cfg.UserInfoInterval == 0 {
		cfg.UserInfoInterval = time.Minute
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
	b := &bearer{cfg: cfg, ctx: ctx, op: p, jwksURL: meta.JWKSURL, now: now,
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

// ErrInsufficientScope is wrapped when a valid token lacks a scope the
// provider's Scopes require (RFC 6750 insufficient_scope).
var ErrInsufficientScope = errors.New("auth: bearer token lacks a required scope")

// tokenClaims is what a verified token says of its user.
type tokenClaims struct {
	aor     string
	expires time.Time
	license bool // the claims grant the meeting license
	admin   bool
}

// verify checks a raw token and returns the user's address of record from
// the configured claim, its expiry and the grants its claims carry.
func (b *bearer) verify(ctx context.Context, raw string) (tokenClaims, error) {
	var none tokenClaims
	kid := unverifiedKeyID(raw)
	if _, known := b.knownKeys.Load(kid); !known && !b.unknownKeys.Allow() {
		return none, fmt.Errorf("%w: unknown key ID %q (key fetches rate-limited)", ErrInvalidToken, kid)
	}
	tok, err := b.verifier.Load().Verify(ctx, raw)
	if err != nil {
		return none, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	b.knownKeys.Store(kid, struct{}{})
	if tok.Expiry.IsZero() || b.now().After(tok.Expiry.Add(b.cfg.MaxClockSkew)) {
		return none, fmt.Errorf("%w: expired at %s", ErrInvalidToken, tok.Expiry.UTC().Format(time.RFC3339))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return none, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	v, _ := claims[b.cfg.UserClaim].(string)
	if v == "" {
		return none, fmt.Errorf("%w: no %q claim", ErrInvalidToken, b.cfg.UserClaim)
	}
	if b.cfg.UserClaim == "email" {
		// An address the provider has not verified proves nothing; some
		// providers send the flag as a string.
		if ev := claims["email_verified"]; ev != true && ev != "true" {
			return none, fmt.Errorf("%w: email not verified", ErrInvalidToken)
		}
	}
	if b.cfg.UserDomain != "" {
		user, _, _ := strings.Cut(v, "@")
		v = user + "@" + b.cfg.UserDomain
	}
	if len(b.cfg.Domains) > 0 && !slices.ContainsFunc(b.cfg.Domains, func(d string) bool { return strings.EqualFold(d, hostOf(v)) }) {
		return none, fmt.Errorf("%w: provider may not assert users of %s", ErrInvalidToken, hostOf(v))
	}
	if missing := b.missingScope(claims); missing != "" {
		return none, fmt.Errorf("%w: %q", ErrInsufficientScope, missing)
	}
	if b.cfg.CheckUserInfo {
		if err := b.userInfo(ctx, raw); err != nil {
			return none, err
		}
	}
	out := tokenClaims{aor: v, expires: tok.Expiry, admin: b.cfg.AdminClaim != "" && claimHas(claims[b.cfg.AdminClaim], b.cfg.AdminValue)}
	out.license = b.cfg.LicenseClaim != "" && claimHas(claims[b.cfg.LicenseClaim], b.cfg.LicenseValue)
	return out, nil
}

// ErrProviderUnreachable is wrapped when a token could not be checked
// because the provider's userinfo endpoint did not answer: a new sign-in
// is refused (SIP 503 with Retry-After), but none is ended.
var ErrProviderUnreachable = errors.New("auth: identity provider unreachable")

// userInfo asks the provider's userinfo endpoint (OpenID Connect Core
// 5.3) whether raw is still good. The error wraps ErrInvalidToken if the
// provider refused it, ErrProviderUnreachable if it did not answer.
func (b *bearer) userInfo(ctx context.Context, raw string) error {
	endpoint := b.op.UserInfoEndpoint()
	if endpoint == "" {
		return fmt.Errorf("%w: the provider has no userinfo endpoint", ErrProviderUnreachable)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProviderUnreachable, err)
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	res, err := b.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProviderUnreachable, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	switch {
	case res.StatusCode == http.StatusOK:
		return nil
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: the provider's userinfo refused it (%s)", ErrInvalidToken, res.Status)
	}
	return fmt.Errorf("%w: userinfo answered %s", ErrProviderUnreachable, res.Status)
}

// missingScope returns the first required scope the token lacks.
func (b *bearer) missingScope(claims map[string]any) string {
	var have []string
	if s, ok := claims["scope"].(string); ok {
		have = strings.Fields(s)
	}
	switch scp := claims["scp"].(type) { // Entra ID, Okta
	case string:
		have = append(have, strings.Fields(scp)...)
	case []any:
		for _, x := range scp {
			if s, ok := x.(string); ok {
				have = append(have, s)
			}
		}
	}
	for _, want := range b.cfg.Scopes {
		if !slices.Contains(have, want) {
			return want
		}
	}
	return ""
}

// claimHas reports whether a claim is value or, as a list (groups,
// roles), contains it.
func claimHas(claim any, value string) bool {
	switch c := claim.(type) {
	case string:
		return c == value
	case []any:
		for _, x := range c {
			if x == value {
				return true
			}
		}
	case bool:
		return strconv.FormatBool(c) == value
	}
	return false
}

// challenge is this provider's RFC 8898 Bearer challenge for realm, with
// an RFC 6750 error when a token was refused.
func (b *bearer) challenge(realm, errCode string) string {
	c := "Bearer realm=" + quote(realm)
	if len(b.cfg.Scopes) > 0 {
		c += ", scope=" + quote(strings.Join(b.cfg.Scopes, " "))
	}
	c += ", authz_server=" + quote(b.cfg.Issuer)
	if errCode != "" {
		c += ", error=" + quote(errCode)
	}
	return c
}

// servesTenant reports whether the provider signs in the users of domain.
func (b *bearer) servesTenant(domain string) bool {
	return slices.ContainsFunc(b.cfg.Domains, func(d string) bool { return strings.EqualFold(d, domain) })
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
