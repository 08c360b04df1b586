package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sign-in methods per tenant. The security model has a tenant's users
// sign in with their organization's identity provider (OAuth 2.0, RFC
// 8898 over SIP); Digest is for anonymous meeting guests with a conference
// key. So once an OIDCProvider names a tenant in its Domains, Digest
// sign-in for the tenant's users is off: they are challenged with Bearer
// only, and a correct password is refused with that same challenge. An
// admin turns Digest back on for one account (User.PasswordSignIn: a
// legacy phone, baresip, a gateway) or the whole tenant
// (Tenant.PasswordSignIn, while migrating). Tenants no provider names keep
// Digest as before.

// isBearer reports whether credentials are a bearer token.
func isBearer(credentials string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(credentials), " ")
	return strings.EqualFold(scheme, "Bearer")
}

// providerFor returns the provider that signs in the users of domain, nil
// if none does.
func (a *Authenticator) providerFor(domain string) *bearer {
	for _, b := range a.bearers {
		if b.servesTenant(domain) {
			return b
		}
	}
	return nil
}

// passwordSignIn reports whether directory user u may sign in with
// Digest.
func (a *Authenticator) passwordSignIn(ctx context.Context, u *User) bool {
	if u.PasswordSignIn || a.providerFor(u.Tenant) == nil {
		return true
	}
	t, err := a.cfg.Directory.Tenant(ctx, u.Tenant)
	return err == nil && t.PasswordSignIn
}

// offer decides which challenges a request is answered with: Digest
// unless the realm's tenant signs in with a provider and the request is
// neither a guest's (addressed to a meeting) nor from an account allowed
// a password; Bearer naming the realm's provider, else the first provider
// not limited to some tenants, if any (one limited to others could not
// sign this realm's users in).
func (a *Authenticator) offer(ctx context.Context, at *attempt, realm string) (digest bool, b *bearer) {
	b = a.providerFor(realm)
	if b == nil {
		for _, any := range a.bearers {
			if len(any.cfg.Domains) == 0 {
				return true, any
			}
		}
		return true, nil
	}
	if t, err := a.cfg.Directory.Tenant(ctx, realm); err == nil && t.PasswordSignIn {
		return true, b
	}
	if at.from != "" && strings.EqualFold(hostOf(at.from), realm) {
		if u, err := a.cfg.Directory.User(ctx, at.from); err == nil && u.PasswordSignIn {
			return true, b
		}
	}
	if at.ruriUser != "" && a.cfg.Conferences != nil {
		if _, err := a.cfg.Conferences.ConferenceKey(ctx, at.ruriUser); err == nil {
			return true, b // a meeting's focus: guests sign in with its key
		}
	}
	return false, b
}

// expiredGrace is how long a connection signed in with a token already
// past its expiry (within the clock skew allowed) stays open.
const expiredGrace = time.Second

// associate binds id to the connection; a connection signed in with a
// token is closed when the token expires, unless a newer token has
// renewed the association by then. Closing it runs the OnConnectionClose
// hooks: the registrar drops the device's bindings, so its watchers see
// it offline, and the focus takes it out of its meetings.
//
// A token accepted although its expiry has passed, within the provider's
// MaxClockSkew, keeps the connection for expiredGrace, so the request it
// came with is answered before the connection closes.
func (a *Authenticator) associate(c *trackedConn, id *Identity, aor string) {
	var after time.Duration
	if !id.Expires.IsZero() {
		after = max(id.Expires.Sub(a.cfg.Now()), expiredGrace)
	}
	c.associate(id, aor, after, func() {
		a.cfg.Logger.Info("bearer token expired: connection closed", "user", id.URI, "peer", c.remote)
	})
}

// userInfoLoop asks provider b, every UserInfoInterval, about the token of
// each connection signed in with one of its tokens, and closes the
// connections whose tokens it refuses: a user disabled at the provider
// is signed out of every device within the interval. A provider that
// does not answer signs nobody out.
func (a *Authenticator) userInfoLoop(ctx context.Context, b *bearer) {
	t := time.NewTicker(b.cfg.UserInfoInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		refused := map[string]bool{}   // by token: devices may share one
		withdrawn := map[string]bool{} // by user: told once a round
		for _, c := range a.conns.all() {
			raw, from := c.bearer()
			if from != b || raw == "" {
				continue
			}
			no, asked := refused[raw]
			if !asked {
				cctx, cancel := context.WithTimeout(ctx, checkTimeout)
				err := b.userInfo(cctx, raw)
				cancel()
				no = errors.Is(err, ErrInvalidToken)
				refused[raw] = no
			}
			if no {
				id, _ := c.association()
				user := ""
				if id != nil {
					user = id.URI
				}
				a.cfg.Logger.Info("the identity provider refuses the token: connection closed", "user", user, "peer", c.remote)
				_ = c.Close()
				if user != "" && !withdrawn[user] {
					withdrawn[user] = true
					for _, f := range a.withdrawn.All() {
						f(user)
					}
				}
			}
		}
	}
}

// OnWithdrawn adds f, called with a user's address of record when the
// Authenticator itself withdraws the user's sign-in: their identity
// provider refuses their token (OIDCProvider.CheckUserInfo). The
// Authenticator has closed the user's connections; f ends the rest of
// what the application let them hold (web sessions, relay allocations
// and credentials). It returns the function that removes f. f is called
// from the Authenticator's own goroutine and must not block.
func (a *Authenticator) OnWithdrawn(f func(aor string)) (remove func()) { return a.withdrawn.Add(f) }

// challenges returns the challenge header values of a refusal: Digest
// SHA-256, then MD5 if enabled, unless the verdict offers no Digest, then
// the Bearer challenge of its provider (RFC 8898: realm, scope,
// authz_server; with an RFC 6750 error after a refused token); MD5 alone
// for the old clients named in MD5OnlyFor, which cannot parse the others.
func (a *Authenticator) challenges(v verdict, userAgent string) []string {
	var out []string
	if !v.noDigest {
		nonce := a.nonces.mint()
		if a.md5 && slices.ContainsFunc(a.cfg.MD5OnlyFor, func(p string) bool { return p != "" && strings.HasPrefix(userAgent, p) }) {
			return []string{digestChallenge(v.realm, nonce, algMD5, v.stale)}
		}
		out = append(out, digestChallenge(v.realm, nonce, algSHA256, v.stale))
		if a.md5 {
			out = append(out, digestChallenge(v.realm, nonce, algMD5, v.stale))
		}
	}
	if v.bearer != nil {
		out = append(out, v.bearer.challenge(v.realm, v.bearerErr))
	}
	return out
}

// bearerToken verifies a request's bearer token with the provider its
// issuer names: an unknown issuer, a bad token or one of a user the
// provider disabled is answered 401 with error="invalid_token", a token
// lacking a scope 403 with insufficient_scope, and a provider that cannot
// be asked 503.
func (a *Authenticator) bearerToken(ctx context.Context, at *attempt, raw, realm string) (*Identity, verdict) {
	iss := unverifiedIssuer(raw)
	invalid := verdict{status: a.challengeStatus(), realm: realm, bearerErr: "invalid_token"}
	for _, b := range a.bearers {
		if b.cfg.Issuer != iss {
			continue
		}
		claims, err := b.verify(ctx, raw)
		if errors.Is(err, ErrInsufficientScope) {
			a.cfg.Logger.Info("bearer token refused", "issuer", iss, "peer", at.source, "err", err)
			return nil, verdict{status: 403, reason: "Insufficient scope", realm: realm, bearer: b, bearerErr: "insufficient_scope"}
		}
		if errors.Is(err, ErrProviderUnreachable) {
			a.cfg.Logger.Warn("bearer token not checked: identity provider unreachable", "issuer", iss, "peer", at.source, "err", err)
			return nil, verdict{status: 503, reason: "Identity provider unreachable", retryAfter: 5 * time.Second}
		}
		if err != nil {
			a.cfg.Logger.Info("bearer token refused", "issuer", iss, "peer", at.source, "err", err)
			return nil, invalid
		}
		at.token = raw
		if b.cfg.CheckUserInfo {
			at.tokenFrom = b
		}
		id, v := a.userIdentity(ctx, claims.aor, MethodBearer, at)
		if id != nil {
			id.Expires = claims.expires
			id.TenantAdmin = claims.admin
			if claims.license {
				id.MeetingLicense = true
			}
		}
		return id, v
	}
	a.cfg.Logger.Info("bearer token from an unknown issuer", "issuer", iss, "peer", at.source)
	return nil, invalid
}

// VerifyBearer checks an OAuth 2.0 access token as a request bearing it
// is checked (the provider its issuer names, audience, expiry, signature,
// scopes, the provider's tenants, userinfo if asked) and returns the
// identity of the enabled directory user it names, with the grants of its
// claims (MeetingLicense, TenantAdmin). It is for an application's own
// HTTP APIs that take tokens beside their own credentials, such as an
// admin API; everything else goes behind [Authenticator.HTTP]. The error
// wraps ErrInvalidToken, ErrInsufficientScope, ErrUnknownUser or
// ErrProviderUnreachable.
func (a *Authenticator) VerifyBearer(ctx context.Context, raw string) (*Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	iss := unverifiedIssuer(raw)
	for _, b := range a.bearers {
		if b.cfg.Issuer != iss {
			continue
		}
		claims, err := b.verify(ctx, raw)
		if err != nil {
			return nil, err
		}
		u, err := a.cfg.Directory.User(ctx, claims.aor)
		if err != nil {
			return nil, err
		}
		if !u.Enabled {
			return nil, fmt.Errorf("%w: %s is disabled", ErrInvalidToken, u.URI)
		}
		id := &Identity{URI: u.URI, DisplayName: u.DisplayName, Tenant: u.Tenant, Kind: Remote, Method: MethodBearer,
			Expires: claims.expires, MeetingLicense: u.MeetingLicense, TenantAdmin: claims.admin}
		if claims.license {
			id.MeetingLicense = true
		}
		return id, nil
	}
	return nil, fmt.Errorf("%w: unknown issuer %q", ErrInvalidToken, iss)
}
