package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// provider is the provider's state: users, clients, keys and the grants in
// flight. It is safe for concurrent use.
type provider struct {
	cfg    *config
	issuer string
	keys   *keyRing

	mu      sync.Mutex
	users   map[string]*user // by username
	devices map[string]*deviceGrant
	codes   map[string]*codeGrant
	refresh map[string]*refreshGrant
}

type deviceGrant struct {
	client     string
	scope      string
	userCode   string
	expires    time.Time
	lastPoll   time.Time
	user       string // set once approved
	deviceCode string
}

type codeGrant struct {
	client, redirect, scope, user, challenge, nonce string
	expires                                         time.Time
}

type refreshGrant struct {
	client, scope, user string
	expires             time.Time
}

func newProvider(cfg *config, issuer string) (*provider, error) {
	keys, err := newKeyRing(cfg.Alg)
	if err != nil {
		return nil, err
	}
	p := &provider{cfg: cfg, issuer: issuer, keys: keys, users: map[string]*user{},
		devices: map[string]*deviceGrant{}, codes: map[string]*codeGrant{}, refresh: map[string]*refreshGrant{}}
	for i := range cfg.Users {
		p.users[cfg.Users[i].Username] = &cfg.Users[i]
	}
	return p, nil
}

func (p *provider) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("POST /device_authorization", p.deviceAuthorization)
	mux.HandleFunc("GET /device", p.deviceForm)
	mux.HandleFunc("POST /device", p.deviceLogin)
	mux.HandleFunc("GET /authorize", p.authorizeForm)
	mux.HandleFunc("POST /authorize", p.authorizeLogin)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /revoke", p.revoke)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	mux.HandleFunc("POST /admin/rotate", p.admin(p.rotate))
	mux.HandleFunc("POST /admin/users/{name}/{action}", p.admin(p.setUser))
	mux.HandleFunc("POST /admin/mint", p.admin(p.mint))
	mux.HandleFunc("POST /admin/clients/{id}/redirect_uris", p.admin(p.addRedirect))
	return mux
}

func (p *provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/authorize",
		"token_endpoint":                        p.issuer + "/token",
		"device_authorization_endpoint":         p.issuer + "/device_authorization",
		"revocation_endpoint":                   p.issuer + "/revoke",
		"userinfo_endpoint":                     p.issuer + "/userinfo",
		"jwks_uri":                              p.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{p.cfg.Alg},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
	})
}

func (p *provider) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, 200, p.keys.jwks())
}

func (p *provider) client(id string) *client {
	for i := range p.cfg.Clients {
		if p.cfg.Clients[i].ClientID == id {
			return &p.cfg.Clients[i]
		}
	}
	return nil
}

// authenticateClient finds the request's client and checks its secret if
// it has one.
func (p *provider) authenticateClient(r *http.Request) *client {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	c := p.client(id)
	if c == nil || (c.Secret != "" && subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1) {
		return nil
	}
	return c
}

// login checks a username and password of an enabled user.
func (p *provider) login(name, password string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[name]
	return u != nil && !u.Disabled && subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1
}

func (p *provider) enabled(name string) *user {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.users[name]; u != nil && !u.Disabled {
		return u
	}
	return nil
}

// --- device authorization grant (RFC 8628) ---

func (p *provider) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	c := p.authenticateClient(r)
	if c == nil {
		oauthError(w, 401, "invalid_client", "unknown client")
		return
	}
	if !c.DeviceFlow {
		oauthError(w, 400, "unauthorized_client", "the device flow is not allowed for this client")
		return
	}
	g := &deviceGrant{client: c.ClientID, scope: r.PostFormValue("scope"), userCode: userCode(),
		deviceCode: randomString(), expires: time.Now().Add(10 * time.Minute)}
	p.mu.Lock()
	p.devices[g.deviceCode] = g
	p.mu.Unlock()
	writeJSON(w, 200, map[string]any{
		"device_code":               g.deviceCode,
		"user_code":                 g.userCode,
		"verification_uri":          p.issuer + "/device",
		"verification_uri_complete": p.issuer + "/device?user_code=" + url.QueryEscape(g.userCode),
		"expires_in":                600,
		"interval":                  p.cfg.DeviceInterval,
	})
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<title>Sign in</title>
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}{{if .UserCode}}<label>Code <input name="user_code" value="{{.UserCode}}"></label>{{end}}
<label>Username <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="signin" type="submit">Sign in</button>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
</form>`))

type loginView struct {
	Action   string
	Hidden   map[string]string
	UserCode string
	Error    string
}

func (p *provider) deviceForm(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("user_code")
	if code == "" {
		code = " " // shows the field empty
	}
	_ = loginPage.Execute(w, loginView{Action: "/device", UserCode: strings.TrimSpace(code)})
}

// deviceLogin is the user signing in on the verification page: the device
// grant with that user code is approved for them.
func (p *provider) deviceLogin(w http.ResponseWriter, r *http.Request) {
	code := strings.ToUpper(strings.TrimSpace(r.PostFormValue("user_code")))
	name := r.PostFormValue("username")
	if !p.login(name, r.PostFormValue("password")) {
		w.WriteHeader(401)
		_ = loginPage.Execute(w, loginView{Action: "/device", UserCode: code, Error: "wrong username or password"})
		return
	}
	p.mu.Lock()
	var found *deviceGrant
	for _, g := range p.devices {
		if g.userCode == code && time.Now().Before(g.expires) && g.user == "" {
			found = g
			g.user = name
		}
	}
	p.mu.Unlock()
	if found == nil {
		w.WriteHeader(400)
		_ = loginPage.Execute(w, loginView{Action: "/device", UserCode: code, Error: "unknown or expired code"})
		return
	}
	_, _ = w.Write([]byte("<!doctype html><title>Signed in</title><p id=\"done\">You are signed in; return to your device.</p>"))
}

// --- authorization code grant with PKCE (RFC 7636, RFC 8252) ---

// redirectAllowed compares a redirect URI with the client's, a loopback
// one on any port (RFC 8252 section 7.3).
func (p *provider) redirectAllowed(c *client, uri string) bool {
	got, err := url.Parse(uri)
	if err != nil {
		return false
	}
	p.mu.Lock()
	registered := slices.Clone(c.RedirectURIs) // the admin may add some
	p.mu.Unlock()
	for _, reg := range registered {
		want, err := url.Parse(reg)
		if err != nil {
			continue
		}
		if uri == reg || (want.Scheme == "http" && (want.Hostname() == "127.0.0.1" || want.Hostname() == "[::1]") &&
			got.Scheme == "http" && got.Hostname() == want.Hostname() && got.Path == want.Path) {
			return true
		}
	}
	return false
}

func (p *provider) authorizeForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := p.client(q.Get("client_id"))
	if c == nil || !p.redirectAllowed(c, q.Get("redirect_uri")) {
		http.Error(w, "unknown client or redirect_uri", 400)
		return
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		redirectError(w, r, q.Get("redirect_uri"), q.Get("state"), "invalid_request", "response_type code with an S256 code_challenge is required")
		return
	}
	hidden := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "state", "scope", "code_challenge", "nonce"} {
		hidden[k] = q.Get(k)
	}
	_ = loginPage.Execute(w, loginView{Action: "/authorize", Hidden: hidden})
}

func (p *provider) authorizeLogin(w http.ResponseWriter, r *http.Request) {
	c := p.client(r.PostFormValue("client_id"))
	redirect := r.PostFormValue("redirect_uri")
	if c == nil || !p.redirectAllowed(c, redirect) {
		http.Error(w, "unknown client or redirect_uri", 400)
		return
	}
	name := r.PostFormValue("username")
	if !p.login(name, r.PostFormValue("password")) {
		hidden := map[string]string{}
		for _, k := range []string{"client_id", "redirect_uri", "state", "scope", "code_challenge", "nonce"} {
			hidden[k] = r.PostFormValue(k)
		}
		w.WriteHeader(401)
		_ = loginPage.Execute(w, loginView{Action: "/authorize", Hidden: hidden, Error: "wrong username or password"})
		return
	}
	code := randomString()
	p.mu.Lock()
	p.codes[code] = &codeGrant{client: c.ClientID, redirect: redirect, scope: r.PostFormValue("scope"), user: name,
		challenge: r.PostFormValue("code_challenge"), nonce: r.PostFormValue("nonce"), expires: time.Now().Add(time.Minute)}
	p.mu.Unlock()
	u, _ := url.Parse(redirect)
	q := u.Query()
	q.Set("code", code)
	q.Set("state", r.PostFormValue("state"))
	q.Set("iss", p.issuer) // RFC 9207
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func redirectError(w http.ResponseWriter, r *http.Request, redirect, state, code, desc string) {
	u, _ := url.Parse(redirect)
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", desc)
	q.Set("state", state)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// --- token endpoint ---

func (p *provider) token(w http.ResponseWriter, r *http.Request) {
	c := p.authenticateClient(r)
	if c == nil {
		oauthError(w, 401, "invalid_client", "unknown client or wrong secret")
		return
	}
	switch r.PostFormValue("grant_type") {
	case "urn:ietf:params:oauth:grant-type:device_code":
		p.deviceToken(w, r, c)
	case "authorization_code":
		p.codeToken(w, r, c)
	case "refresh_token":
		p.refreshToken(w, r, c)
	default:
		oauthError(w, 400, "unsupported_grant_type", "")
	}
}

func (p *provider) deviceToken(w http.ResponseWriter, r *http.Request, c *client) {
	p.mu.Lock()
	g := p.devices[r.PostFormValue("device_code")]
	if g == nil || g.client != c.ClientID {
		p.mu.Unlock()
		oauthError(w, 400, "invalid_grant", "unknown device code")
		return
	}
	now := time.Now()
	switch {
	case now.After(g.expires):
		delete(p.devices, r.PostFormValue("device_code"))
		p.mu.Unlock()
		oauthError(w, 400, "expired_token", "")
		return
	case g.user == "":
		tooSoon := now.Sub(g.lastPoll) < time.Duration(p.cfg.DeviceInterval)*time.Second*9/10
		g.lastPoll = now
		p.mu.Unlock()
		if tooSoon {
			oauthError(w, 400, "slow_down", "")
		} else {
			oauthError(w, 400, "authorization_pending", "")
		}
		return
	}
	delete(p.devices, r.PostFormValue("device_code"))
	p.mu.Unlock()
	p.issue(w, c, g.user, g.scope, "")
}

func (p *provider) codeToken(w http.ResponseWriter, r *http.Request, c *client) {
	code := r.PostFormValue("code")
	p.mu.Lock()
	g := p.codes[code]
	delete(p.codes, code) // one use only
	p.mu.Unlock()
	if g == nil || g.client != c.ClientID || time.Now().After(g.expires) || g.redirect != r.PostFormValue("redirect_uri") {
		oauthError(w, 400, "invalid_grant", "unknown, used or expired code")
		return
	}
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		oauthError(w, 400, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	p.issue(w, c, g.user, g.scope, g.nonce)
}

func (p *provider) refreshToken(w http.ResponseWriter, r *http.Request, c *client) {
	rt := r.PostFormValue("refresh_token")
	p.mu.Lock()
	g := p.refresh[rt]
	delete(p.refresh, rt) // refresh tokens rotate
	p.mu.Unlock()
	if g == nil || g.client != c.ClientID || time.Now().After(g.expires) {
		oauthError(w, 400, "invalid_grant", "unknown, revoked or expired refresh token")
		return
	}
	if p.enabled(g.user) == nil {
		oauthError(w, 400, "invalid_grant", "the user is disabled")
		return
	}
	p.issue(w, c, g.user, g.scope, "")
}

// issue answers a token request with an access token, a refresh token and,
// for the openid scope, an ID token.
func (p *provider) issue(w http.ResponseWriter, c *client, name, scope, nonce string) {
	u := p.enabled(name)
	if u == nil {
		oauthError(w, 400, "access_denied", "the user is disabled")
		return
	}
	at, err := p.accessToken(u, c, append([]string{c.ClientID}, c.Audience...), scope, p.cfg.accessTTL)
	if err != nil {
		oauthError(w, 500, "server_error", err.Error())
		return
	}
	out := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(p.cfg.accessTTL.Seconds()), "scope": scope}
	rt := randomString()
	p.mu.Lock()
	p.refresh[rt] = &refreshGrant{client: c.ClientID, scope: scope, user: name, expires: time.Now().Add(p.cfg.refreshTTL)}
	p.mu.Unlock()
	out["refresh_token"] = rt
	if slices.Contains(strings.Fields(scope), "openid") {
		claims := p.userClaims(u)
		now := time.Now()
		claims["iss"], claims["aud"], claims["iat"], claims["exp"] = p.issuer, c.ClientID, now.Unix(), now.Add(p.cfg.accessTTL).Unix()
		if nonce != "" {
			claims["nonce"] = nonce
		}
		if out["id_token"], err = p.keys.sign(claims, "JWT"); err != nil {
			oauthError(w, 500, "server_error", err.Error())
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, 200, out)
}

func (p *provider) userClaims(u *user) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	claims := map[string]any{"sub": u.Username, "preferred_username": u.Username}
	for k, v := range u.Claims {
		claims[k] = v
	}
	return claims
}

// accessToken is a JWT access token (RFC 9068) for user u.
func (p *provider) accessToken(u *user, c *client, aud []string, scope string, ttl time.Duration) (string, error) {
	claims := p.userClaims(u)
	now := time.Now()
	claims["iss"], claims["aud"], claims["client_id"], claims["scope"] = p.issuer, aud, c.ClientID, scope
	claims["iat"], claims["exp"], claims["jti"] = now.Unix(), now.Add(ttl).Unix(), randomString()
	return p.keys.sign(claims, "at+jwt")
}

// revoke forgets a refresh token (RFC 7009); an unknown token is no error.
func (p *provider) revoke(w http.ResponseWriter, r *http.Request) {
	c := p.authenticateClient(r)
	if c == nil {
		oauthError(w, 401, "invalid_client", "")
		return
	}
	p.mu.Lock()
	if g := p.refresh[r.PostFormValue("token")]; g != nil && g.client == c.ClientID {
		delete(p.refresh, r.PostFormValue("token"))
	}
	p.mu.Unlock()
	w.WriteHeader(200)
}

// userinfo answers for a valid access token of an enabled user (OIDC Core
// 5.3); a disabled user's token gets invalid_token (RFC 6750).
func (p *provider) userinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims, err := p.keys.verify(raw)
	if !ok || err != nil {
		bearerError(w, "invalid_token", "bad token")
		return
	}
	exp, _ := claims["exp"].(float64)
	name, _ := claims["sub"].(string)
	if time.Now().Unix() > int64(exp) {
		bearerError(w, "invalid_token", "expired")
		return
	}
	u := p.enabled(name)
	if u == nil {
		bearerError(w, "invalid_token", "the user is disabled")
		return
	}
	writeJSON(w, 200, p.userClaims(u))
}

// --- admin, for tests ---

func (p *provider) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(raw), []byte(p.cfg.AdminSecret)) != 1 {
			bearerError(w, "invalid_token", "admin secret required")
			return
		}
		h(w, r)
	}
}

func (p *provider) rotate(w http.ResponseWriter, _ *http.Request) {
	if err := p.keys.rotate(); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	writeJSON(w, 200, map[string]string{"kid": p.keys.current().id})
}

// setUser disables or enables a user: disabling also revokes their
// refresh tokens.
func (p *provider) setUser(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[name]
	if u == nil || (action != "disable" && action != "enable") {
		http.Error(w, "unknown user or action", 404)
		return
	}
	u.Disabled = action == "disable"
	if u.Disabled {
		for k, g := range p.refresh {
			if g.user == name {
				delete(p.refresh, k)
			}
		}
	}
	w.WriteHeader(204)
}

// addRedirect registers a redirect URI for a client, as an admin does
// once the application's address is known.
func (p *provider) addRedirect(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URI string `json:"uri"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.URI == "" {
		http.Error(w, "want {\"uri\": ...}", 400)
		return
	}
	c := p.client(r.PathValue("id"))
	if c == nil {
		http.Error(w, "unknown client", 404)
		return
	}
	p.mu.Lock()
	c.RedirectURIs = append(c.RedirectURIs, req.URI)
	p.mu.Unlock()
	w.WriteHeader(204)
}

// mint issues an access token without a grant, with the audience and
// lifetime the test asks for (a negative lifetime gives an expired token).
func (p *provider) mint(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User      string   `json:"user"`
		ClientID  string   `json:"client_id"`
		Audience  []string `json:"audience"`
		Scope     string   `json:"scope"`
		ExpiresIn int      `json:"expires_in"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	p.mu.Lock()
	u := p.users[req.User] // a disabled user's token too: the test checks it is refused
	p.mu.Unlock()
	c := p.client(req.ClientID)
	if u == nil || c == nil {
		http.Error(w, "unknown user or client", 404)
		return
	}
	if req.Audience == nil {
		req.Audience = append([]string{c.ClientID}, c.Audience...)
	}
	ttl := time.Duration(req.ExpiresIn) * time.Second
	if req.ExpiresIn == 0 {
		ttl = p.cfg.accessTTL
	}
	at, err := p.accessToken(u, c, req.Audience, req.Scope, ttl)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	writeJSON(w, 200, map[string]any{"access_token": at, "token_type": "Bearer"})
}

// --- helpers ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func bearerError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`", error_description="`+desc+`"`)
	w.WriteHeader(401)
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// userCode is eight letters from an alphabet without vowels or look-alikes
// (RFC 8628 section 6.1), shown as XXXX-XXXX.
func userCode() string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}
