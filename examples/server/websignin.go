package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/parleyuc/parley/auth"
)

// The web client's "Sign in with your organization": the authorization
// code grant with PKCE (RFC 7636), run by the server for the browser.
//
//	GET  /auth/login?meeting=ID  redirects to the meeting's tenant's provider
//	GET  /auth/callback          takes the code back, makes a web session
//	POST /auth/logout            ends it
//	GET  /auth/session?meeting=ID whether the page may offer the sign-in, and who is signed in
//
// The state and the PKCE verifier stay on the server, found again by a
// random value in a short-lived HttpOnly cookie that only the browser
// that started the sign-in holds. The callback exchanges the code, and the
// Authenticator verifies the access token as it verifies a device's
// (issuer, audience, scopes, tenants, userinfo, disabled users). The
// session is an opaque random ID in an HttpOnly, Secure, SameSite=Lax
// cookie; the token stays on the server, and the session ends with it.
// The meeting ticket takes the session as the user's identity, verifying
// the token again each time, so a user disabled in the directory or at the
// provider gets no more tickets.

const (
	sessionCookie = "__Host-parley-session" // __Host-: Secure, Path=/, no Domain
	signInCookie  = "__Host-parley-signin"
	signInTTL     = 10 * time.Minute // from the redirect to the provider to the callback
	maxSessionTTL = 12 * time.Hour   // whatever the token says
	maxSessions   = 10_000
	maxPending    = 1_000
	maxPerSource  = 100 // sign-ins in flight from one address (an IPv6 /64); a company's NAT is one
	sweepEvery    = time.Minute
)

// webProvider is a provider's settings for the web sign-in, and its
// endpoints once discovered.
type webProvider struct {
	issuer, clientID string
	scopes           []string // the ones the Authenticator requires
	tenants          []string
	client           *http.Client

	mu       sync.Mutex
	endpoint *oauth2.Endpoint
}

// discover fetches the provider's endpoints on first use (a provider down
// at start-up does not stop the server) and keeps them.
func (p *webProvider) discover(ctx context.Context) (oauth2.Endpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.endpoint != nil {
		return *p.endpoint, nil
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.issuer)
	if err != nil {
		return oauth2.Endpoint{}, err
	}
	e := op.Endpoint()
	p.endpoint = &e
	return e, nil
}

func (p *webProvider) oauth(redirect string, e oauth2.Endpoint) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID, "email", "profile"}
	for _, s := range p.scopes {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return &oauth2.Config{ClientID: p.clientID, Endpoint: e, RedirectURL: redirect, Scopes: scopes}
}

// pendingSignIn is a sign-in between the redirect to the provider and
// the callback.
type pendingSignIn struct {
	provider *webProvider
	state    string
	verifier string
	meeting  string
	source   netip.Prefix
	expires  time.Time
}

// webSession is a signed-in browser.
type webSession struct {
	token   string // the access token, verified again for each ticket
	id      *auth.Identity
	expires time.Time
}

// webSignIn serves the web sign-in and keeps its sessions, in memory:
// at most maxSessions sessions and maxPending sign-ins in flight, the
// expired ones swept as new ones come.
type webSignIn struct {
	providers     []*webProvider
	redirectURI   string // https://<host>:<https port>/auth/callback
	verify        func(ctx context.Context, raw string) (*auth.Identity, error)
	meetingTenant func(ctx context.Context, meeting string) (string, error)
	logger        *slog.Logger
	now           func() time.Time

	mu        sync.Mutex
	pending   map[string]*pendingSignIn // by the sign-in cookie's value
	sessions  map[[32]byte]*webSession  // by the SHA-256 of the session ID
	lastSweep time.Time
}

func newWebSignIn(providers []*webProvider, redirectURI string, verify func(context.Context, string) (*auth.Identity, error),
	meetingTenant func(context.Context, string) (string, error), logger *slog.Logger) *webSignIn {
	return &webSignIn{providers: providers, redirectURI: redirectURI, verify: verify, meetingTenant: meetingTenant, logger: logger,
		now: time.Now, pending: map[string]*pendingSignIn{}, sessions: map[[32]byte]*webSession{}}
}

// routes adds the sign-in's endpoints to mux.
func (ws *webSignIn) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/login", ws.login)
	mux.HandleFunc("GET /auth/callback", ws.callback)
	mux.HandleFunc("POST /auth/logout", ws.logout)
	mux.HandleFunc("GET /auth/session", ws.session)
}

// providerFor is the provider signing in the tenant of a meeting.
func (ws *webSignIn) providerFor(ctx context.Context, meeting string) *webProvider {
	if meeting == "" || len(ws.providers) == 0 {
		return nil
	}
	tenant, err := ws.meetingTenant(ctx, meeting)
	if err != nil {
		return nil
	}
	for _, p := range ws.providers {
		for _, t := range p.tenants {
			if strings.EqualFold(t, tenant) {
				return p
			}
		}
	}
	return nil
}

// sourcePrefix is the request's source address, as an IPv6 /64 (one
// host's) or an IPv4 /32.
func sourcePrefix(r *http.Request) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sweep drops expired sign-ins and sessions, at most once a minute
// unless full is set (a table is full). ws.mu is held.
func (ws *webSignIn) sweep(now time.Time, full bool) {
	if !full && now.Sub(ws.lastSweep) < sweepEvery {
		return
	}
	ws.lastSweep = now
	for k, p := range ws.pending {
		if now.After(p.expires) {
			delete(ws.pending, k)
		}
	}
	for k, s := range ws.sessions {
		if now.After(s.expires) {
			delete(ws.sessions, k)
		}
	}
}

// login is GET /auth/login?meeting=ID: the browser goes to the meeting's
// tenant's provider, with a new state and PKCE challenge.
func (ws *webSignIn) login(w http.ResponseWriter, r *http.Request) {
	meeting := r.URL.Query().Get("meeting")
	p := ws.providerFor(r.Context(), meeting)
	if p == nil {
		ws.page(w, http.StatusNotFound, "No sign-in here", "This meeting's organization has no sign-in through an identity provider.", "")
		return
	}
	e, err := p.discover(r.Context())
	if err != nil {
		ws.logger.Warn("web sign-in: provider discovery failed", "issuer", p.issuer, "err", err)
		w.Header().Set("Retry-After", "5")
		ws.page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Your organization's sign-in cannot be reached; try again in a moment.", meeting)
		return
	}
	pend := &pendingSignIn{provider: p, state: randomID(), verifier: oauth2.GenerateVerifier(), meeting: meeting,
		source: sourcePrefix(r), expires: ws.now().Add(signInTTL)}
	binding := randomID()
	ws.mu.Lock()
	ws.sweep(ws.now(), len(ws.pending) >= maxPending)
	full := len(ws.pending) >= maxPending
	mine := 0
	for _, other := range ws.pending {
		if other.source == pend.source {
			mine++
		}
	}
	if !full && mine < maxPerSource {
		ws.pending[binding] = pend
	}
	ws.mu.Unlock()
	if !full && mine >= maxPerSource {
		w.Header().Set("Retry-After", strconv.Itoa(int(signInTTL/time.Second)))
		ws.page(w, http.StatusTooManyRequests, "Too many sign-ins", "Too many sign-ins were started from your address; finish one, or try again in a few minutes.", meeting)
		return
	}
	if full {
		w.Header().Set("Retry-After", "60")
		ws.page(w, http.StatusServiceUnavailable, "Sign-in busy", "Too many sign-ins are under way; try again in a minute.", meeting)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: binding, Path: "/", MaxAge: int(signInTTL / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode}) // Lax: it comes back on the provider's redirect
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.oauth(ws.redirectURI, e).AuthCodeURL(pend.state, oauth2.S256ChallengeOption(pend.verifier)), http.StatusFound)
}

// callback is GET /auth/callback: the provider's redirect with the code.
func (ws *webSignIn) callback(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	var pend *pendingSignIn
	if c, err := r.Cookie(signInCookie); err == nil {
		ws.mu.Lock()
		pend = ws.pending[c.Value]
		delete(ws.pending, c.Value) // one use
		ws.mu.Unlock()
	}
	q := r.URL.Query()
	if pend == nil || ws.now().After(pend.expires) {
		ws.page(w, http.StatusBadRequest, "Sign-in not recognized",
			"This sign-in did not start in this browser, or it took too long. Start again from the meeting's page.", "")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(pend.state)) != 1 {
		ws.page(w, http.StatusBadRequest, "Sign-in not recognized", "The answer from the sign-in does not match the one this browser started. Start again.", pend.meeting)
		return
	}
	if iss := q.Get("iss"); iss != "" && iss != pend.provider.issuer { // RFC 9207: the answer of another provider
		ws.page(w, http.StatusBadRequest, "Sign-in not recognized", "The answer came from another identity provider. Start again.", pend.meeting)
		return
	}
	if e := q.Get("error"); e != "" {
		ws.logger.Info("web sign-in refused by the provider", "issuer", pend.provider.issuer, "error", e, "description", q.Get("error_description"))
		ws.page(w, http.StatusForbidden, "Not signed in", "Your organization's sign-in did not sign you in ("+e+").", pend.meeting)
		return
	}
	if q.Get("code") == "" {
		ws.page(w, http.StatusBadRequest, "Sign-in not recognized", "The answer from the sign-in carries no code. Start again.", pend.meeting)
		return
	}
	e, err := pend.provider.discover(r.Context())
	var tok *oauth2.Token
	if err == nil {
		ctx := context.WithValue(r.Context(), oauth2.HTTPClient, pend.provider.client)
		tok, err = pend.provider.oauth(ws.redirectURI, e).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pend.verifier))
	}
	var refused *oauth2.RetrieveError
	switch {
	case errors.As(err, &refused):
		ws.logger.Info("web sign-in: the provider refused the code", "issuer", pend.provider.issuer, "err", err)
		ws.page(w, http.StatusForbidden, "Not signed in", "Your organization's sign-in did not accept this sign-in. Start again.", pend.meeting)
		return
	case err != nil:
		ws.logger.Warn("web sign-in: provider unreachable", "issuer", pend.provider.issuer, "err", err)
		w.Header().Set("Retry-After", "5")
		ws.page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Your organization's sign-in cannot be reached; try again in a moment.", pend.meeting)
		return
	}
	id, err := ws.verify(r.Context(), tok.AccessToken)
	if errors.Is(err, auth.ErrProviderUnreachable) {
		w.Header().Set("Retry-After", "5")
		ws.page(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Your organization's sign-in cannot be reached; try again in a moment.", pend.meeting)
		return
	}
	if err != nil {
		ws.logger.Info("web sign-in: token refused", "issuer", pend.provider.issuer, "err", err)
		ws.page(w, http.StatusForbidden, "Not signed in",
			"You signed in with your organization, but your account may not use this service (it is unknown here, disabled, or lacks a permission). Ask your administrator.", pend.meeting)
		return
	}
	now := ws.now()
	expires := id.Expires
	if expires.IsZero() {
		expires = tok.Expiry
	}
	if expires.IsZero() || expires.After(now.Add(maxSessionTTL)) {
		expires = now.Add(maxSessionTTL)
	}
	sid := randomID()
	ws.mu.Lock()
	ws.sweep(now, len(ws.sessions) >= maxSessions)
	full := len(ws.sessions) >= maxSessions
	if !full {
		ws.sessions[sha256.Sum256([]byte(sid))] = &webSession{token: tok.AccessToken, id: id, expires: expires}
	}
	ws.mu.Unlock()
	if full {
		w.Header().Set("Retry-After", "60")
		ws.page(w, http.StatusServiceUnavailable, "Sign-in busy", "Too many people are signed in; try again later.", pend.meeting)
		return
	}
	ws.logger.Info("web sign-in", "user", id.URI, "expires", expires.UTC().Format(time.RFC3339))
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", Expires: expires, MaxAge: int(expires.Sub(now) / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/meet/"+url.PathEscape(pend.meeting)+"#signed-in", http.StatusSeeOther)
}

// current is the request's live session, or nil; an expired one is
// dropped.
func (ws *webSignIn) current(r *http.Request) (*webSession, [32]byte) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, [32]byte{}
	}
	key := sha256.Sum256([]byte(c.Value))
	ws.mu.Lock()
	defer ws.mu.Unlock()
	s := ws.sessions[key]
	if s != nil && ws.now().After(s.expires) {
		delete(ws.sessions, key)
		s = nil
	}
	return s, key
}

func (ws *webSignIn) drop(key [32]byte) {
	ws.mu.Lock()
	delete(ws.sessions, key)
	ws.mu.Unlock()
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

// sameOrigin refuses a request another site's page sent with the
// browser's cookies (SameSite=Lax already keeps them off cross-site
// POSTs; this is the second lock).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme == "https" && strings.EqualFold(u.Host, r.Host)
}

// ticket puts the web session's user as the identity of a meeting ticket
// request, then serves it with next; a request with credentials of its
// own (Authorization: Digest or Bearer) or no session cookie goes to
// withCredentials (the Authenticator's HTTPForMeeting) as before.
func (ws *webSignIn) ticket(withCredentials, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			withCredentials.ServeHTTP(w, r)
			return
		}
		if _, err := r.Cookie(sessionCookie); err != nil {
			withCredentials.ServeHTTP(w, r)
			return
		}
		if !sameOrigin(r) {
			jsonError(w, http.StatusForbidden, "cross-site request")
			return
		}
		s, key := ws.current(r)
		if s == nil {
			clearSession(w)
			jsonError(w, http.StatusUnauthorized, "your sign-in has ended: sign in again")
			return
		}
		// The token again, as for a device's request: a user disabled
		// in the directory or at the provider is signed out here.
		id, err := ws.verify(r.Context(), s.token)
		if errors.Is(err, auth.ErrProviderUnreachable) {
			w.Header().Set("Retry-After", "5")
			jsonError(w, http.StatusServiceUnavailable, "your organization's sign-in cannot be reached; try again in a moment")
			return
		}
		if err != nil {
			ws.drop(key)
			clearSession(w)
			ws.logger.Info("web session ended: token refused", "user", s.id.URI, "err", err)
			jsonError(w, http.StatusForbidden, "you are signed out: your account is no longer accepted")
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.ContextWithIdentity(r.Context(), id)))
	})
}

// logout is POST /auth/logout: the session ends.
func (ws *webSignIn) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		jsonError(w, http.StatusForbidden, "cross-site request")
		return
	}
	if s, key := ws.current(r); s != nil {
		ws.drop(key)
		ws.logger.Info("web sign-out", "user", s.id.URI)
	}
	clearSession(w)
	w.WriteHeader(http.StatusNoContent)
}

// session is GET /auth/session?meeting=ID, for the page: whether the
// meeting's organization signs in with a provider, and who is signed in.
func (ws *webSignIn) session(w http.ResponseWriter, r *http.Request) {
	type user struct {
		URI         string `json:"uri"`
		DisplayName string `json:"display_name"`
		Expires     string `json:"expires"`
	}
	out := struct {
		SignIn bool  `json:"sign_in"`
		User   *user `json:"user"`
	}{SignIn: ws.providerFor(r.Context(), r.URL.Query().Get("meeting")) != nil}
	if s, _ := ws.current(r); s != nil {
		out.User = &user{URI: s.id.URI, DisplayName: s.id.DisplayName, Expires: s.expires.UTC().Format(time.RFC3339)}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// signOut ends the web sessions of a user whose rights were withdrawn;
// it returns how many.
func (ws *webSignIn) signOut(aor string) int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for k, s := range ws.sessions {
		if strings.EqualFold(s.id.URI, aor) {
			delete(ws.sessions, k)
			n++
		}
	}
	return n
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title><link rel="stylesheet" href="/web/style.css"></head>
<body><main><h1>{{.Title}}</h1><p id="message">{{.Message}}</p>
{{if .Meeting}}<p><a href="/meet/{{.Meeting}}">Back to the meeting</a></p>{{end}}</main></body></html>
`))

// page answers with a readable page saying what happened.
func (ws *webSignIn) page(w http.ResponseWriter, status int, title, message, meeting string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", webCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = signInPage.Execute(w, map[string]string{"Title": title, "Message": message, "Meeting": meeting})
}
