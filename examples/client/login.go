package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/parleyuc/parley/internal/atomicfile"
)

// Modern Authentication: login signs the user in at their organization's
// identity provider with the OAuth 2.0 device authorization grant (RFC
// 8628), or with the authorization code grant, PKCE and a loopback
// redirect (RFC 8252, -browser), and keeps the tokens in a file of mode
// 0600; every other command then signs in with the access token (Bearer,
// RFC 8898 over SIP, RFC 6750 over HTTPS), refreshing it before it
// expires. logout forgets the tokens and revokes the refresh token (RFC
// 7009) where the provider has a revocation endpoint.

// refreshMargin is how long before its expiry an access token is
// refreshed.
const refreshMargin = 60 * time.Second

// tokenCache is what login keeps of a sign-in.
type tokenCache struct {
	User               string    `json:"user"`
	Issuer             string    `json:"issuer"`
	ClientID           string    `json:"client_id"`
	TokenEndpoint      string    `json:"token_endpoint"`
	RevocationEndpoint string    `json:"revocation_endpoint,omitempty"`
	ProviderCA         string    `json:"provider_ca,omitempty"` // a CA file to trust for the provider's HTTPS
	AccessToken        string    `json:"access_token"`
	RefreshToken       string    `json:"refresh_token,omitempty"`
	Expiry             time.Time `json:"expiry"`
}

// tokenSource hands out the cached access token, refreshing it (and the
// file) when it is about to expire. It is safe for concurrent use.
type tokenSource struct {
	path   string
	client *http.Client

	mu    sync.Mutex
	cache tokenCache
}

// tokenPath is the token file of user aor: -token-cache, else one per
// user in the user's configuration directory.
func (e *env) tokenPath(aor string) (string, error) {
	if e.opts.tokenCache != "" {
		return e.opts.tokenCache, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	name := strings.NewReplacer(":", "_", "/", "_", "@", "_at_").Replace(strings.TrimPrefix(aor, "sip:"))
	return filepath.Join(dir, "parley-client", name+".token.json"), nil
}

// loadTokens returns the token source of aor, or nil if login has not
// been run for it.
func (e *env) loadTokens(aor string) (*tokenSource, error) {
	path, err := e.tokenPath(aor)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is mode %04o: others may read the tokens (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	var c tokenCache
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.User != aor {
		return nil, fmt.Errorf("%s holds the tokens of %s, not %s", path, c.User, aor)
	}
	client, err := providerClient(c.ProviderCA, e.opts.timeout)
	if err != nil {
		return nil, err
	}
	return &tokenSource{path: path, client: client, cache: c}, nil
}

// token returns a valid access token, refreshed if it expires within
// refreshMargin. Another process of the user (online and watch at once)
// may have refreshed it already: the file is read again first, as the
// provider may have rotated the refresh token this process holds.
func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Until(s.cache.Expiry) > refreshMargin {
		return s.cache.AccessToken, nil
	}
	if data, err := os.ReadFile(s.path); err == nil {
		var onDisk tokenCache
		if json.Unmarshal(data, &onDisk) == nil && onDisk.User == s.cache.User && onDisk.Expiry.After(s.cache.Expiry) {
			s.cache = onDisk
			if time.Until(s.cache.Expiry) > refreshMargin {
				return s.cache.AccessToken, nil
			}
		}
	}
	if s.cache.RefreshToken == "" {
		return "", fmt.Errorf("the access token of %s expired; run login again", s.cache.User)
	}
	conf := &oauth2.Config{ClientID: s.cache.ClientID, Endpoint: oauth2.Endpoint{TokenURL: s.cache.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, s.client), &oauth2.Token{RefreshToken: s.cache.RefreshToken}).Token()
	if err != nil {
		return "", fmt.Errorf("refresh the token of %s (run login again?): %w", s.cache.User, err)
	}
	s.cache.AccessToken, s.cache.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		s.cache.RefreshToken = tok.RefreshToken // providers rotate them
	}
	if err := saveTokens(s.path, s.cache); err != nil {
		return "", err
	}
	return s.cache.AccessToken, nil
}

// due reports whether the access token is to be refreshed now: the next
// request should carry a new one, renewing the sign-in.
func (s *tokenSource) due() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Until(s.cache.Expiry) <= refreshMargin
}

// renewAt is when a session signed in with the token should send a
// request carrying a fresh one, at the latest at, so that the server does
// not sign it out: once within refreshMargin of expiry, or halfway through
// what is left of a token shorter-lived than that. A refresh that failed
// is tried again 5 s later.
func (s *tokenSource) renewAt(now, at time.Time) time.Time {
	if s == nil {
		return at
	}
	left := s.expiry().Sub(now)
	due := now.Add(left - refreshMargin + 5*time.Second)
	if left < refreshMargin {
		due = now.Add(max(left/2, 5*time.Second))
		if left > 0 {
			due = now.Add(max(left/2, time.Second))
		}
	}
	if due.Before(at) {
		return due
	}
	return at
}

// expiry is when the current access token expires.
func (s *tokenSource) expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.Expiry
}

// saveTokens writes the token file, mode 0600, in a directory of mode
// 0700.
func saveTokens(path string, c tokenCache) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

// providerClient is an HTTP client for the identity provider, trusting
// the system's CAs and those of caFile, if set.
func providerClient(caFile string, timeout time.Duration) (*http.Client, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-provider-ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("-provider-ca %s: no PEM certificate in it", caFile)
		}
		conf.RootCAs = pool
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment}}, nil
}

// providerMetadata is what login needs of the provider's discovery
// document (OpenID Connect Discovery, RFC 8414).
type providerMetadata struct {
	Issuer                      string `json:"issuer"`
	AuthorizationEndpoint       string `json:"authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	RevocationEndpoint          string `json:"revocation_endpoint"`
}

func discover(ctx context.Context, client *http.Client, issuer string) (*providerMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", issuer, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("provider %s: discovery: %s", issuer, res.Status)
	}
	var m providerMetadata
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("provider %s: discovery: %w", issuer, err)
	}
	if m.Issuer != issuer {
		return nil, fmt.Errorf("provider %s: discovery names issuer %q", issuer, m.Issuer)
	}
	if m.TokenEndpoint == "" {
		return nil, fmt.Errorf("provider %s: discovery has no token_endpoint", issuer)
	}
	return &m, nil
}

// serverChallenge asks the server which provider signs its users in: the
// authz_server and scope of the Bearer challenge (RFC 8898) an
// unauthenticated request gets.
func serverChallenge(ctx context.Context, e *env) (issuer, scope string, err error) {
	t, err := newTrust(e)
	if err != nil {
		return "", "", err
	}
	defer t.Close()
	tr := &http.Transport{TLSClientConfig: t.tls}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+e.opts.httpsAddr+"/relay/credentials", nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("User-Agent", userAgent)
	res, err := (&http.Client{Transport: tr, Timeout: e.opts.timeout}).Do(req)
	if err != nil {
		return "", "", connectionError(e.opts.httpsAddr, err)
	}
	res.Body.Close()
	for _, c := range res.Header.Values("WWW-Authenticate") {
		if p, ok := parseScheme(c, "Bearer"); ok && p["authz_server"] != "" {
			return p["authz_server"], p["scope"], nil
		}
	}
	return "", "", errors.New("the server offers no Bearer sign-in (no identity provider configured); give -issuer, or sign in with a password")
}

// credentials answers a 401's challenges: with the access token if the
// user has logged in and a Bearer challenge is offered, else with Digest
// and the password.
func (id identity) credentials(ctx context.Context, challenges []string, method, uri string) (string, error) {
	if id.tokens != nil {
		for _, c := range challenges {
			if p, ok := parseScheme(c, "Bearer"); ok {
				if p["error"] == "invalid_token" {
					return "", fmt.Errorf("the server refused the token of %s (run login again?)", id.aor)
				}
				tok, err := id.tokens.token(ctx)
				if err != nil {
					return "", err
				}
				return "Bearer " + tok, nil
			}
		}
		return "", fmt.Errorf("%s has logged in, but the server offers no Bearer sign-in", id.aor)
	}
	return digestAuthorization(challenges, method, uri, id.username, id.password)
}

// runLogin is the login command.
func runLogin(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "login", "[-issuer URL] [-client-id ID] [-scope S] [-provider-ca FILE] [-browser]")
	issuer := fs.String("issuer", "", "the identity provider's issuer `URL`; default: the one the server's Bearer challenge names")
	clientID := fs.String("client-id", "parley", "the client `ID` registered at the provider for Parley's clients")
	scope := fs.String("scope", "", "`scopes` to ask for besides openid, email and offline_access; default: the server challenge's")
	providerCA := fs.String("provider-ca", "", "CA certificate `file` to trust for the provider's HTTPS, besides the system's")
	browser := fs.Bool("browser", false, "sign in in a browser (authorization code, PKCE, loopback redirect) instead of with a code")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if e.opts.user == "" {
		return usagef("-user is required")
	}
	aor, err := canonicalURI(e.opts.user, defaultDomain)
	if err != nil {
		return usagef("-user %s: %v", e.opts.user, err)
	}
	if *issuer == "" {
		var challenged string
		if *issuer, challenged, err = serverChallenge(ctx, e); err != nil {
			return err
		}
		if *scope == "" {
			*scope = challenged
		}
	}
	client, err := providerClient(*providerCA, e.opts.timeout)
	if err != nil {
		return err
	}
	meta, err := discover(ctx, client, *issuer)
	if err != nil {
		return err
	}
	conf := &oauth2.Config{ClientID: *clientID, Scopes: append([]string{"openid", "email", "offline_access"}, strings.Fields(*scope)...),
		Endpoint: oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint,
			DeviceAuthURL: meta.DeviceAuthorizationEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	octx := context.WithValue(ctx, oauth2.HTTPClient, client)
	var tok *oauth2.Token
	if *browser {
		tok, err = browserLogin(octx, e, conf)
	} else {
		tok, err = deviceLogin(octx, e, conf)
	}
	if err != nil {
		return err
	}
	path, err := e.tokenPath(aor)
	if err != nil {
		return err
	}
	ca := *providerCA
	if ca != "" {
		if ca, err = filepath.Abs(ca); err != nil {
			return err
		}
	}
	c := tokenCache{User: aor, Issuer: meta.Issuer, ClientID: *clientID, TokenEndpoint: meta.TokenEndpoint,
		RevocationEndpoint: meta.RevocationEndpoint, ProviderCA: ca,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	if err := saveTokens(path, c); err != nil {
		return err
	}
	e.out.line("logged-in", aor, meta.Issuer)
	return nil
}

// deviceLogin runs the device authorization grant: it prints where to
// sign in and the code to enter, then polls until the user has.
func deviceLogin(ctx context.Context, e *env, conf *oauth2.Config) (*oauth2.Token, error) {
	if conf.Endpoint.DeviceAuthURL == "" {
		return nil, errors.New("the provider has no device authorization endpoint; use -browser")
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	e.out.line("login-code", da.UserCode, da.VerificationURI)
	if da.VerificationURIComplete != "" {
		e.out.line("login-url", da.VerificationURIComplete)
	}
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return nil, fmt.Errorf("device authorization: %w", err)
	}
	return tok, nil
}

// runLogout is the logout command.
func runLogout(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "logout", "")
	if err := fs.parse(args); err != nil {
		return err
	}
	if e.opts.user == "" {
		return usagef("-user is required")
	}
	aor, err := canonicalURI(e.opts.user, defaultDomain)
	if err != nil {
		return usagef("-user %s: %v", e.opts.user, err)
	}
	ts, err := e.loadTokens(aor)
	if err != nil {
		return err
	}
	if ts == nil {
		return fmt.Errorf("%s is not logged in", aor)
	}
	c := ts.cache
	// Forget first: a revocation that fails leaves no token behind here.
	if err := os.Remove(ts.path); err != nil {
		return err
	}
	if c.RevocationEndpoint != "" && c.RefreshToken != "" {
		form := url.Values{"token": {c.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {c.ClientID}}
		req, err := http.NewRequestWithContext(ctx, "POST", c.RevocationEndpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := ts.client.Do(req)
		if err != nil {
			return fmt.Errorf("tokens forgotten, but the refresh token was not revoked: %w", err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("tokens forgotten, but the provider refused to revoke the refresh token: %s", res.Status)
		}
		e.out.line("revoked", c.Issuer)
	}
	e.out.line("logged-out", aor)
	return nil
}
