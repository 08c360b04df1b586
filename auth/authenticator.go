package auth

import (
	"context"
	"crypto/fips140"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/parleyuc/parley/internal/hooks"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrUnknownMeeting is what a ConferenceKeys implementation returns for a
// meeting it does not know.
var ErrUnknownMeeting = errors.New("auth: unknown meeting")

// ConferenceKeys looks up meetings' conference keys, for anonymous users.
// Package conference implements it. A meeting's focus is addressed by a
// SIP URI whose user part is the meeting ID (sip:<meeting ID>@<domain>):
// an anonymous user's requests must be addressed to the focus of the
// meeting its key opened.
type ConferenceKeys interface {
	// ConferenceKey returns the key of the meeting with the given ID, or an
	// error wrapping ErrUnknownMeeting.
	ConferenceKey(ctx context.Context, meetingID string) (string, error)
}

// checkTimeout bounds one authentication (a directory lookup, a provider's
// key fetch).
const checkTimeout = 5 * time.Second

// AnonymousPrefix starts the Digest username of an anonymous user: the
// username is "meeting:<meeting ID>" and the password the meeting's
// conference key.
const AnonymousPrefix = "meeting:"

// EdgeFlowHeader carries, on a request an Access Edge passes on for a
// remote user or guest, an opaque name of the user's own connection to
// the edge. It is believed only from a trusted edge (Config.Edges): a
// guest authenticating with a conference key keeps one identity over
// that connection, as a guest connected directly keeps one over its own.
const EdgeFlowHeader = "P-Parley-Flow"

// Config configures an [Authenticator]. Directory and Realm are required.
type Config struct {
	// Directory holds the tenants and users. Required.
	Directory Directory
	// Realm is the Digest realm (and Bearer realm) used when a request's
	// domain is not one of the directory's tenants. Required.
	Realm string
	// OIDC lists the OpenID Connect providers whose bearer tokens are
	// accepted. Providers are contacted (discovery) when the
	// Authenticator is created.
	OIDC []OIDCProvider
	// Conferences looks up conference keys for anonymous users. Nil: no
	// anonymous access.
	Conferences ConferenceKeys
	// Throttle limits requests per source. Nil: a Throttle with the default
	// limits (throttling is on by default).
	Throttle *Throttle
	// KeyBackoff makes wrong conference keys wait, per meeting and source
	// (see keyBackoffKey). Nil: a Backoff with the default settings.
	KeyBackoff *Backoff
	// Proxy makes the Authenticator challenge as a proxy: 407 with
	// Proxy-Authenticate, credentials in Proxy-Authorization.
	Proxy bool
	// NonceTTL is how long a Digest nonce is valid. Default 5 minutes.
	NonceTTL time.Duration
	// MaxNonces bounds the nonce-count table. Default 100,000.
	MaxNonces int
	// DisableMD5 stops offering and accepting Digest MD5, which exists only
	// for old clients. MD5 is never offered in FIPS 140-3 mode.
	DisableMD5 bool
	// MD5OnlyFor lists User-Agent prefixes of old clients that fail on
	// any challenge but Digest MD5 instead of ignoring what they do not
	// support, as RFC 8760 asks (baresip 1.0 on libre 1.x aborts with
	// ENOSYS on a SHA-256 challenge and cannot parse a Bearer one). They
	// are offered the MD5 challenge alone; everyone else SHA-256 first.
	// Outside FIPS mode only; empty by default.
	MD5OnlyFor []string
	// InternalNetworks are the source prefixes of the corporate network:
	// tenant users connecting from them are Internal, others Remote.
	// Default: loopback and the private ranges (RFC 1918, RFC 4193).
	InternalNetworks []netip.Prefix
	// Edges are the DNS names of the Access Edges, as their certificates
	// name them, trusted to assert federated users: a request over a
	// connection whose verified client certificate names one of them comes
	// from the user its P-Asserted-Identity names, who must be of a domain
	// that is not one of the directory's tenants. Empty: no edge is
	// trusted.
	Edges []string
	// Peers are the DNS names the certificates of the other front ends of
	// a pool carry, trusted to pass on requests of the tenants' users
	// signed in with them: a request over a connection whose verified
	// client certificate (issued by EdgeCA) names one of them comes from
	// the user its P-Asserted-Identity names, who must be an enabled user
	// of the directory. Empty: no front end is trusted.
	Peers []string
	// EdgeCA is the CA that issues the edges' and the pool front ends'
	// certificates, required with Edges or Peers: a server that also
	// trusts partners' CAs must not take a partner's certificate naming
	// an edge for the edge.
	EdgeCA *x509.Certificate
	// ConnLimits bounds the connections of the listeners Listener and
	// WSSListener wrap: timeouts, caps per address and in all, message
	// size, WebSocket origins. Zero fields take the defaults.
	ConnLimits ConnLimits
	// Logger receives authentication failures. Default slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Authenticator authenticates SIP and HTTP requests and keeps security
// associations for SIP connections.
//
// Composition: SIP handlers call Authenticate first (or are wrapped with
// Require); presence.Registrar, PresenceServer and Router and
// conference.Focus take it as their Auth. Wrap the TLS listeners the SIP
// server serves with Listener (WSSListener for WebSocket) so a
// connection keeps its identity; HTTP handlers go behind HTTP or
// HTTPForMeeting, and read the caller with IdentityFromContext (an
// application with its own login sets it with ContextWithIdentity
// instead). Its Config ([Config]) takes the Directory and the realm
// (required), OpenID Connect providers, conference keys for guests, the
// Throttle and the trusted edges and pool peers.
//
// Hooks: OnConnectionClose(fn) adds fn, called when a tracked connection
// closes (SignOut closes a user's on purpose), and returns its remove
// function; a presence.Registrar registers itself.
//
// It is safe for concurrent use; Close stops its background work.
type Authenticator struct {
	cfg      Config
	nonces   *nonces
	bearers  []*bearer
	throttle *Throttle
	backoff  *Backoff
	conns    connTable
	metrics  authMetrics
	md5      bool
	// withdrawn are the OnWithdrawn hooks.
	withdrawn hooks.List[func(aor string)]

	ctx    context.Context // canceled by Close; parent of every SIP request's check
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns an Authenticator, or an error naming the invalid field.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Directory == nil {
		return nil, errors.New("auth: Config.Directory is required")
	}
	if cfg.Realm == "" {
		return nil, errors.New("auth: Config.Realm is required")
	}
	if (len(cfg.Edges) > 0 || len(cfg.Peers) > 0) && cfg.EdgeCA == nil {
		return nil, errors.New("auth: Config.EdgeCA is required with Config.Edges or Config.Peers")
	}
	if cfg.NonceTTL == 0 {
		cfg.NonceTTL = 5 * time.Minute
	}
	if cfg.NonceTTL < 0 {
		return nil, errors.New("auth: Config.NonceTTL must be positive")
	}
	if cfg.MaxNonces == 0 {
		cfg.MaxNonces = 100_000
	}
	if cfg.MaxNonces < 2 {
		return nil, errors.New("auth: Config.MaxNonces must be at least 2")
	}
	var err error
	if cfg.ConnLimits, err = cfg.ConnLimits.check("auth: Config.ConnLimits."); err != nil {
		return nil, err
	}
	if cfg.InternalNetworks == nil {
		for _, p := range []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
			cfg.InternalNetworks = append(cfg.InternalNetworks, netip.MustParsePrefix(p))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Directory = nonNilDirectory{cfg.Directory}
	a := &Authenticator{cfg: cfg, throttle: cfg.Throttle, md5: !cfg.DisableMD5 && !fips140.Enabled()}
	if a.throttle == nil {
		if a.throttle, err = NewThrottle(ThrottleConfig{Now: cfg.Now}); err != nil {
			return nil, err
		}
	}
	if a.backoff = cfg.KeyBackoff; a.backoff == nil {
		a.backoff, _ = NewBackoff(BackoffConfig{Now: cfg.Now}) // the defaults are valid
	}
	a.nonces = newNonces(cfg.NonceTTL, cfg.MaxNonces, cfg.Now)
	ctx, cancel := context.WithCancel(context.Background())
	a.ctx, a.cancel = ctx, cancel
	for i, p := range cfg.OIDC {
		b, err := newBearer(ctx, p, cfg.Now)
		if err != nil {
			cancel()
			a.wg.Wait()
			return nil, fmt.Errorf("auth: Config.OIDC[%d]: %w", i, err)
		}
		a.bearers = append(a.bearers, b)
		a.wg.Go(func() { a.refreshKeysLoop(ctx, b) })
		if b.cfg.CheckUserInfo {
			a.wg.Go(func() { a.userInfoLoop(ctx, b) })
		}
	}
	return a, nil
}

// nonNilDirectory turns an application Directory's (nil, nil), a
// plausible way to say "not found", into the documented errors, so that no
// request can make the Authenticator dereference a nil user or tenant.
type nonNilDirectory struct{ Directory }

func (d nonNilDirectory) Tenant(ctx context.Context, domain string) (*Tenant, error) {
	t, err := d.Directory.Tenant(ctx, domain)
	if err == nil && t == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTenant, domain)
	}
	return t, err
}

func (d nonNilDirectory) User(ctx context.Context, aor string) (*User, error) {
	u, err := d.Directory.User(ctx, aor)
	if err == nil && u == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownUser, aor)
	}
	return u, err
}

// Close stops refreshing providers' keys and ends the checks in flight
// (directory lookups, key fetches), whose requests are then refused.
func (a *Authenticator) Close() error {
	a.cancel()
	a.wg.Wait()
	return nil
}

func (a *Authenticator) refreshKeysLoop(ctx context.Context, b *bearer) {
	t := time.NewTicker(b.cfg.KeyRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.refreshKeys()
		}
	}
}

// RefreshKeys drops every provider's cached signing keys now; the next
// token is verified against the provider's current JWKS.
func (a *Authenticator) RefreshKeys() {
	for _, b := range a.bearers {
		b.refreshKeys()
	}
}

// attempt is what the Authenticator needs to know of a request, SIP or
// HTTP.
type attempt struct {
	method      string
	uri         string // the Request-URI, for Digest
	ruriUser    string // the Request-URI's user part (a meeting's ID at a focus); over HTTPForMeeting, the meeting's ID
	sip         bool   // a SIP request (From and meeting rules apply)
	host        string // the request's domain, to choose the realm
	from        string // SIP From address (a bare URI); empty for HTTP
	fromName    string // SIP From display name
	event       string // SIP Event header
	userAgent   string // User-Agent header
	credentials string // Authorization or Proxy-Authorization
	asserted    string // P-Asserted-Identity, which only a trusted edge or pool front end may set
	guest       string // PoolGuestHeader, which only a pool front end may set
	federated   bool   // PoolFederatedHeader, likewise
	source      netip.Addr
	uriMatches  func(string) bool   // whether a Digest uri names this request's target
	conn        *trackedConn        // nil if untracked
	peerCerts   []*x509.Certificate // verified client certificate chain
	throughEdge bool                // a user's request an Access Edge passed on: Remote, whatever source
	edgeFlow    string              // EdgeFlowHeader, as the request came (believed if throughEdge)
	token       string              // the bearer token that authenticated the request, if one did
	tokenFrom   *bearer             // its provider, if it asks for userinfo checks
}

// verdict is the outcome of an attempt: an identity, or a response.
type verdict struct {
	id         *Identity
	status     int
	reason     string
	realm      string // for a challenge
	stale      bool
	retryAfter time.Duration
	storeDown  bool    // the directory could not be read (HTTP: 503, not the throttle's 429)
	noDigest   bool    // the challenge offers no Digest (password sign-in is off)
	bearer     *bearer // whose Bearer challenge to offer; nil: none
	bearerErr  string  // RFC 6750 error code for a refused token
}

func refuse(status int, reason string) verdict { return verdict{status: status, reason: reason} }

// check runs the whole decision for one request, and says which
// challenges a refusal offers.
func (a *Authenticator) check(ctx context.Context, at *attempt) verdict {
	v := a.checkCredentials(ctx, at)
	if v.status == 401 || v.status == 407 {
		digest, b := a.offer(ctx, at, v.realm)
		v.noDigest = v.noDigest || !digest
		if v.bearer == nil {
			v.bearer = b
		}
	}
	return v
}

func (a *Authenticator) checkCredentials(ctx context.Context, at *attempt) verdict {
	if at.sip {
		if peer := a.peerOf(at); peer != "" {
			return a.pooled(ctx, at, peer)
		}
	}
	if edge := a.edgeOf(at); edge != "" && at.sip {
		if at.asserted != "" {
			return a.federated(ctx, at, edge)
		}
		// A remote or anonymous user the edge passed on: the edge's
		// connection carries many users, so no security association and
		// no certificate of its own count; the user authenticates each
		// request, and the edge throttles it per address.
		at.conn, at.peerCerts, at.throughEdge = nil, nil, true
	} else if ok, wait := a.throttle.Allow(at.source, ""); !ok {
		return verdict{status: 503, reason: "Service Unavailable", retryAfter: wait}
	}
	realm := a.realmFor(ctx, at)

	// Phase two: a connection with a security association is trusted for
	// its identity only, while that identity still holds. On a connection
	// signed in with a token, a request with a token renews it: the token
	// is verified as in phase one. (Credentials on a connection signed in
	// otherwise are ignored, as they always were.)
	var prior *Identity
	if at.conn != nil {
		if id, aor := at.conn.association(); id != nil && id.Method == MethodBearer && isBearer(at.credentials) {
			prior = id
		} else if id != nil {
			switch v, ok := a.stillValid(ctx, id); {
			case ok && v.status != 0: // the directory cannot say: answer, keep the association
				return v
			case !ok:
				at.conn.dissociate()
				if v.status != 0 {
					return v
				}
			default:
				return a.permit(ctx, id, aor, at)
			}
		}
	}

	// Phase one: credentials, then a client certificate, else a challenge.
	var id *Identity
	var v verdict
	switch {
	case at.credentials != "":
		id, v = a.credentials(ctx, at, realm)
	case len(at.peerCerts) > 0:
		id, v = a.certificate(ctx, at)
	default:
		return verdict{status: a.challengeStatus(), realm: realm}
	}
	if id == nil {
		return v
	}
	aor := id.URI
	if id.Kind == Anonymous {
		aor = at.from // an anonymous user is held to the From it authenticated with
	}
	if v := a.permit(ctx, id, aor, at); v.id == nil {
		return v
	}
	if prior != nil && !sameAOR(prior.URI, id.URI) {
		return refuse(403, "The connection is signed in as another user")
	}
	if at.conn != nil {
		a.associate(at.conn, id, aor)
		if at.tokenFrom != nil {
			at.conn.setBearer(at.token, at.tokenFrom)
		}
	}
	return verdict{id: id.clone()}
}

// stillValid reports whether an associated identity may still be used: a
// bearer token's expiry has not passed and a directory user is still
// enabled. When it may not, the verdict says what to answer (zero: go on
// to authenticate afresh). When the directory cannot be read (its store
// is down), the association stands but the request is answered 503 with
// Retry-After: a store outage neither lets a withdrawn user in nor signs
// everyone out.
func (a *Authenticator) stillValid(ctx context.Context, id *Identity) (verdict, bool) {
	if !id.Expires.IsZero() && a.cfg.Now().After(id.Expires) {
		return verdict{}, false
	}
	if id.Kind == Anonymous {
		return verdict{}, true
	}
	u, err := a.cfg.Directory.User(ctx, id.URI)
	if unavailable(err) {
		return a.directoryDown(err), true
	}
	if err != nil || !u.Enabled {
		return refuse(403, "Account disabled"), false
	}
	return verdict{}, true
}

// permit applies the rules every authenticated request must follow.
func (a *Authenticator) permit(ctx context.Context, id *Identity, aor string, at *attempt) verdict {
	if at.sip && !sameAOR(at.from, aor) {
		return refuse(403, "From does not match the authenticated identity")
	}
	if id.Kind == Anonymous {
		switch {
		case !at.sip && at.ruriUser != "" && at.ruriUser == id.Meeting:
			// HTTPForMeeting: a request about the meeting its key opens.
		case !at.sip:
			return refuse(403, "anonymous users may only take part in their meeting")
		case !anonymousMayDo(at.method, at.event):
			return refuse(403, "anonymous users may only take part in their meeting")
		case at.ruriUser != id.Meeting:
			return refuse(403, "anonymous users may only address their meeting's focus")
		case a.isTenant(ctx, hostOf(aor)):
			return refuse(403, "anonymous users may not use a tenant's address")
		}
	}
	return verdict{id: id.clone()}
}

// anonymousMayDo: an anonymous user holds a key to one meeting and may do
// nothing but take part in it.
func anonymousMayDo(method, event string) bool {
	switch strings.ToUpper(method) {
	case "INVITE", "ACK", "BYE", "CANCEL", "INFO", "PRACK", "UPDATE", "OPTIONS":
		return true
	case "SUBSCRIBE":
		return strings.EqualFold(strings.TrimSpace(strings.Split(event, ";")[0]), "conference")
	}
	return false
}

func (a *Authenticator) isTenant(ctx context.Context, domain string) bool {
	if domain == "" {
		return false
	}
	_, err := a.cfg.Directory.Tenant(ctx, domain)
	return err == nil
}

func (a *Authenticator) challengeStatus() int {
	if a.cfg.Proxy {
		return 407
	}
	return 401
}

// realmFor picks the realm to challenge with: the From's domain (the
// user's own tenant) if it is a tenant's, else the Request-URI's, else the
// configured realm.
func (a *Authenticator) realmFor(ctx context.Context, at *attempt) string {
	for _, d := range []string{hostOf(at.from), at.host} {
		if d == "" {
			continue
		}
		if t, err := a.cfg.Directory.Tenant(ctx, d); err == nil {
			return t.Domain
		}
	}
	return a.cfg.Realm
}

// knownRealm reports whether credentials may name realm: the configured
// realm or any tenant's domain.
func (a *Authenticator) knownRealm(ctx context.Context, realm string) bool {
	return realm == a.cfg.Realm || a.isTenant(ctx, realm)
}

func hostOf(aor string) string {
	_, host, err := splitAOR(aor)
	if err != nil {
		return ""
	}
	return host
}

func sameAOR(a, b string) bool {
	ua, ha, err1 := splitAOR(a)
	ub, hb, err2 := splitAOR(b)
	return err1 == nil && err2 == nil && ua == ub && ha == hb
}

// credentials verifies an Authorization header.
func (a *Authenticator) credentials(ctx context.Context, at *attempt, realm string) (*Identity, verdict) {
	h, err := parseAuthHeader(at.credentials)
	if err != nil {
		return nil, refuse(400, "Malformed credentials")
	}
	switch {
	case strings.EqualFold(h.Scheme, "Bearer") && h.Token68 != "":
		return a.bearerToken(ctx, at, h.Token68, realm)
	case strings.EqualFold(h.Scheme, "Digest") && h.Params != nil:
		return a.digest(ctx, at, h.Params, realm)
	}
	return nil, verdict{status: a.challengeStatus(), realm: realm}
}

func (a *Authenticator) digest(ctx context.Context, at *attempt, p map[string]string, realm string) (*Identity, verdict) {
	again := verdict{status: a.challengeStatus(), realm: realm}
	for _, k := range []string{"username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce"} {
		if p[k] == "" {
			return nil, refuse(400, "Digest credentials lack "+k)
		}
	}
	alg := p["algorithm"]
	if alg == "" {
		alg = algMD5 // RFC 7616: absent means MD5
	}
	if strings.EqualFold(alg, algSHA256) {
		alg = algSHA256
	} else if !strings.EqualFold(alg, algMD5) || !a.md5 {
		return nil, again
	}
	if p["qop"] != "auth" || p["userhash"] == "true" || !a.knownRealm(ctx, p["realm"]) {
		return nil, again
	}
	// The response covers the uri parameter: it must name this request's
	// target, or credentials made for one target would open another.
	if !at.uriMatches(p["uri"]) {
		return nil, refuse(400, "Digest uri does not match the Request-URI")
	}
	nc, ok := parseNC(p["nc"])
	if !ok {
		return nil, refuse(400, "Bad nonce count")
	}
	state, issued := a.nonces.check(p["nonce"])
	if state == nonceInvalid {
		return nil, again
	}

	// Find the secret. Nothing about the account (disabled, say) is told
	// before the response has proved the password.
	username, credRealm := p["username"], p["realm"]
	var ha1 string
	var anon *Identity
	var user *User
	var backoffKey string
	if meeting, ok := strings.CutPrefix(username, AnonymousPrefix); ok {
		if a.cfg.Conferences == nil || meeting == "" {
			return nil, again
		}
		key, err := a.cfg.Conferences.ConferenceKey(ctx, meeting)
		if err != nil {
			a.cfg.Logger.Info("anonymous join refused", "meeting", meeting, "peer", at.source, "err", err)
			return nil, again
		}
		backoffKey = a.keyBackoffKey(meeting, at)
		if wait := a.backoff.Wait(backoffKey); wait > 0 {
			return nil, verdict{status: 503, reason: "Service Unavailable", retryAfter: wait}
		}
		ha1 = digestHA1(alg, username, credRealm, key)
		uri := anonymousURI()
		if at.throughEdge && at.edgeFlow != "" {
			// One guest over one connection to the edge, one identity.
			uri = "sip:anonymous-" + hex.EncodeToString(a.nonces.mac([]byte("guest\x00" + meeting + "\x00" + at.edgeFlow))[:8]) + "@" + anonymousDomain
		}
		anon = &Identity{URI: uri, DisplayName: at.fromName, Kind: Anonymous,
			Method: MethodConferenceKey, Meeting: meeting}
	} else {
		aor := username
		if !strings.Contains(aor, "@") {
			aor += "@" + credRealm
		}
		u, err := a.cfg.Directory.User(ctx, aor)
		if unavailable(err) {
			return nil, a.directoryDown(err)
		}
		if err != nil || u.Tenant != credRealm || u.Username() != strings.SplitN(username, "@", 2)[0] {
			a.cfg.Logger.Info("digest for an unknown user", "user", aor, "peer", at.source)
			return nil, again
		}
		ha1 = u.Credentials.HA1SHA256
		if alg == algMD5 {
			ha1 = u.Credentials.HA1MD5
		}
		if ha1 == "" {
			return nil, again
		}
		user = u
	}
	want := digestResponse(alg, ha1, p["nonce"], p["nc"], p["cnonce"], at.method, p["uri"])
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(p["response"]))) != 1 {
		a.cfg.Logger.Info("digest response wrong", "user", username, "peer", at.source)
		if anon != nil {
			a.backoff.Fail(backoffKey)
		}
		return nil, again
	}
	if state == nonceStale {
		// RFC 7616: stale=true only when the response was right, so the
		// client may retry with the new nonce without asking its user.
		again.stale = true
		return nil, again
	}
	if !a.nonces.use(p["nonce"], issued, nc) {
		a.cfg.Logger.Warn("digest credentials replayed", "user", username, "peer", at.source)
		return nil, again
	}
	if anon != nil {
		a.backoff.Succeed(backoffKey)
		return anon, verdict{}
	}
	if !a.passwordSignIn(ctx, user) {
		// Told only now the password is right: the user is to sign in
		// with the organization's provider, which alone is offered.
		a.cfg.Logger.Info("digest refused: the tenant signs in with its identity provider", "user", user.URI, "peer", at.source)
		again.noDigest = true
		return nil, again
	}
	return a.userIdentity(ctx, user.URI, MethodDigest, at)
}

// certificate maps a verified TLS client certificate to a user by its SIP
// URI subject alternative name. The chain, EKU and revocation were checked
// by package pki during the handshake.
func (a *Authenticator) certificate(ctx context.Context, at *attempt) (*Identity, verdict) {
	leaf := at.peerCerts[0]
	for _, u := range leaf.URIs {
		if u.Scheme != "sip" && u.Scheme != "sips" {
			continue
		}
		return a.userIdentity(ctx, u.String(), MethodCertificate, at)
	}
	return nil, refuse(403, "Client certificate names no SIP user")
}

// userIdentity builds the identity of an enabled directory user.
func (a *Authenticator) userIdentity(ctx context.Context, aor string, m Method, at *attempt) (*Identity, verdict) {
	u, err := a.cfg.Directory.User(ctx, aor)
	if unavailable(err) {
		return nil, a.directoryDown(err)
	}
	if err != nil {
		return nil, refuse(403, "Unknown user")
	}
	if !u.Enabled {
		return nil, refuse(403, "Account disabled")
	}
	kind := Remote
	for _, p := range a.cfg.InternalNetworks {
		if !at.throughEdge && p.Contains(at.source.Unmap()) {
			kind = Internal
			break
		}
	}
	return &Identity{URI: u.URI, DisplayName: u.DisplayName, Tenant: u.Tenant, Kind: kind, Method: m,
		MeetingLicense: u.MeetingLicense}, verdict{}
}

// anonymousDomain is the domain of anonymous users' URIs (RFC 3323).
const anonymousDomain = "anonymous.invalid"

func anonymousURI() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "sip:anonymous-" + hex.EncodeToString(b[:]) + "@" + anonymousDomain
}

// Authenticate checks a SIP request. It returns the identity when the
// request may be served; otherwise it has already answered the request
// (401/407 challenge, 403, 400 or 503 with Retry-After) and returns nil.
// Handlers call it first:
//
//	id := authn.Authenticate(req, tx)
//	if id == nil {
//		return
//	}
func (a *Authenticator) Authenticate(req *sip.Request, tx sip.ServerTransaction) *Identity {
	at := a.sipAttempt(req)
	// sipgo's handlers carry no context: the check is bounded by
	// checkTimeout and ends when the Authenticator is closed.
	ctx, cancel := context.WithTimeout(a.ctx, checkTimeout)
	defer cancel()
	v := a.decide(ctx, at)
	if v.id != nil {
		return v.id
	}
	_ = tx.Respond(a.sipResponse(req, v, at.userAgent))
	return nil
}

// Require adapts a handler that needs an identity to sipgo's handler
// shape, authenticating every request first.
func (a *Authenticator) Require(h func(id *Identity, req *sip.Request, tx sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if id := a.Authenticate(req, tx); id != nil {
			h(id, req, tx)
		}
	}
}

func (a *Authenticator) sipAttempt(req *sip.Request) *attempt {
	at := &attempt{method: string(req.Method), uri: req.Recipient.String(), host: req.Recipient.Host,
		ruriUser: req.Recipient.User, sip: true}
	ruri := req.Recipient
	at.uriMatches = func(u string) bool {
		var got sip.Uri
		if sip.ParseUri(u, &got) != nil {
			return false
		}
		return got.User == ruri.User && strings.EqualFold(got.Host, ruri.Host) && got.Port == ruri.Port &&
			strings.EqualFold(got.Scheme, ruri.Scheme)
	}
	if f := req.From(); f != nil {
		at.from = f.Address.String()
		at.fromName = f.DisplayName
	}
	if h := req.GetHeader("Event"); h != nil {
		at.event = h.Value()
	}
	if h := req.GetHeader("User-Agent"); h != nil {
		at.userAgent = h.Value()
	}
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		at.asserted = h.Value()
	}
	if h := req.GetHeader(EdgeFlowHeader); h != nil {
		at.edgeFlow = h.Value()
	}
	if h := req.GetHeader(PoolGuestHeader); h != nil {
		at.guest = h.Value()
	}
	at.federated = req.GetHeader(PoolFederatedHeader) != nil
	name := "Authorization"
	if a.cfg.Proxy {
		name = "Proxy-Authorization"
	}
	if h := req.GetHeader(name); h != nil {
		at.credentials = h.Value()
	}
	src := req.Source()
	if ap, err := netip.ParseAddrPort(src); err == nil {
		at.source = ap.Addr()
	}
	// Only a request that arrived over TLS (or WebSocket over TLS) can
	// belong to a tracked connection: a UDP datagram from the same address
	// and port must not.
	if tp := strings.ToUpper(req.Transport()); tp == "TLS" || tp == "WSS" {
		if c := a.conns.get(connKey(tp, src)); c != nil {
			at.conn = c
			at.peerCerts = c.peerCertificates()
		}
	}
	return at
}

func (a *Authenticator) sipResponse(req *sip.Request, v verdict, userAgent string) *sip.Response {
	if v.reason == "" {
		v.reason = map[int]string{401: "Unauthorized", 407: "Proxy Authentication Required"}[v.status]
	}
	res := sip.NewResponseFromRequest(req, v.status, v.reason, nil)
	switch v.status {
	case 401, 407:
		name := "WWW-Authenticate"
		if v.status == 407 {
			name = "Proxy-Authenticate"
		}
		for _, c := range a.challenges(v, userAgent) {
			res.AppendHeader(sip.NewHeader(name, c))
		}
	case 403:
		if v.bearer != nil && v.bearerErr != "" {
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", v.bearer.challenge(v.realm, v.bearerErr)))
		}
	case 503:
		res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(retrySeconds(v.retryAfter))))
	}
	return res
}

func retrySeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
