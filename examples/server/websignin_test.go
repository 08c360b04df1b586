package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/oidctest"
	"github.com/parleyuc/parley/pki"
)

// webSSOServer starts a provider and a server signing the demo tenant in
// with it, registers the server's callback at the provider as its admin
// would, and has alice (with a token) schedule a meeting.
func webSSOServer(t *testing.T, keepAdminToken bool, edit func(*oidctest.Config)) (*server, *oidctest.Provider, scheduled) {
	t.Helper()
	s, p := oidcServerWith(t, keepAdminToken, func(c *oidctest.Config) {
		// carol has an account at the provider but none in the directory.
		c.Users = append(c.Users, oidctest.User{Username: "carol", Password: "carol-idp",
			Claims: map[string]any{"email": "carol@example.test", "email_verified": true}})
		if edit != nil {
			edit(c)
		}
	})
	if err := p.AddRedirectURI(t.Context(), "parley", "https://"+s.listeners["https"]+"/auth/callback"); err != nil {
		t.Fatal(err)
	}
	req := mustRequest(t, "POST", "https://"+s.listeners["https"]+"/api/meetings", []byte(`{"subject":"Signed in","access":"organization"}`))
	req.Header.Set("Authorization", "Bearer "+token(t, p, "alice"))
	res, err := s.httpsClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m scheduled
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("schedule with a token: %s %s", res.Status, b)
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return s, p, m
}

// webBrowser is a browser's HTTP side: a cookie jar, trusting the
// server's and the provider's CAs, following no redirect by itself.
type webBrowser struct {
	t    *testing.T
	c    *http.Client
	base string
	p    *oidctest.Provider
}

func newWebBrowser(t *testing.T, s *server, p *oidctest.Provider) *webBrowser {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)
	data, err := os.ReadFile(filepath.Join(s.data, "ca", pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !roots.AppendCertsFromPEM(data) {
		t.Fatal("no server CA")
	}
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &webBrowser{t: t, base: "https://" + s.listeners["https"], p: p, c: &http.Client{Timeout: 10 * time.Second, Transport: tr, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the response with its body read.
func (b *webBrowser) do(method, u string, body io.Reader, contentType string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res, string(data)
}

// send sends req and returns its status.
func (b *webBrowser) send(req *http.Request) int {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// toProvider starts a sign-in for the meeting and signs in on the
// provider's page as user: it returns the callback URL the provider sends
// the browser to, not yet followed.
func (b *webBrowser) toProvider(meeting, user, password string) string {
	b.t.Helper()
	res, body := b.do("GET", b.base+"/auth/login?meeting="+meeting, nil, "")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), b.p.Issuer+"/authorize?") {
		b.t.Fatalf("login: %s %s %s", res.Status, res.Header.Get("Location"), body)
	}
	authz, _ := url.Parse(res.Header.Get("Location"))
	if q := authz.Query(); q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || !strings.Contains(q.Get("scope"), "sip") {
		b.t.Fatalf("authorization request %s", authz)
	}
	res, body = b.do("GET", authz.String(), nil, "")
	if res.StatusCode != 200 {
		b.t.Fatalf("the provider's login page: %s %s", res.Status, body)
	}
	form := url.Values{"username": {user}, "password": {password}}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	res, body = b.do("POST", b.p.Issuer+"/authorize", strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(res.Header.Get("Location"), b.base+"/auth/callback?") {
		b.t.Fatalf("signing in at the provider: %s %s %s", res.Status, res.Header.Get("Location"), body)
	}
	return res.Header.Get("Location")
}

// signIn goes through the whole sign-in and returns the callback's
// response.
func (b *webBrowser) signIn(meeting, user, password string) *http.Response {
	b.t.Helper()
	res, body := b.do("GET", b.toProvider(meeting, user, password), nil, "")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/meet/"+meeting+"#signed-in" {
		b.t.Fatalf("callback: %s %s %s", res.Status, res.Header.Get("Location"), body)
	}
	return res
}

// ticket asks for a meeting ticket with the browser's cookies only.
func (b *webBrowser) ticket(meeting string) (int, string) {
	b.t.Helper()
	res, body := b.do("POST", b.base+"/api/meetings/"+meeting+"/ticket", strings.NewReader(`{"display_name":"Someone"}`), "application/json")
	return res.StatusCode, body
}

// whoami is the signed-in user /auth/session names, or "".
func (b *webBrowser) whoami(meeting string) (signIn bool, uri string) {
	b.t.Helper()
	res, body := b.do("GET", b.base+"/auth/session?meeting="+meeting, nil, "")
	var out struct {
		SignIn bool `json:"sign_in"`
		User   *struct {
			URI string `json:"uri"`
		} `json:"user"`
	}
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil {
		b.t.Fatalf("session: %s %s", res.Status, body)
	}
	if out.User != nil {
		uri = out.User.URI
	}
	return out.SignIn, uri
}

func TestWebSignIn(t *testing.T) {
	s, p, m := webSSOServer(t, true, nil)

	t.Run("signed in, a ticket, signed out", func(t *testing.T) {
		b := newWebBrowser(t, s, p)
		if code, _ := b.ticket(m.ID); code != http.StatusUnauthorized {
			t.Fatalf("ticket before signing in: %d", code)
		}
		if signIn, who := b.whoami(m.ID); !signIn || who != "" {
			t.Fatalf("before: sign_in %v, user %q", signIn, who)
		}
		res := b.signIn(m.ID, "alice", "alice-idp")
		var sid *http.Cookie
		for _, c := range res.Cookies() {
			if c.Name == sessionCookie && c.Value != "" {
				sid = c
			}
		}
		if sid == nil || !sid.HttpOnly || !sid.Secure || sid.SameSite != http.SameSiteLaxMode || sid.Path != "/" || sid.MaxAge <= 0 || sid.MaxAge > 5*60 {
			t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax, expiring with the token", sid)
		}
		if _, who := b.whoami(m.ID); who != "sip:alice@example.test" {
			t.Fatalf("signed in as %q", who)
		}
		code, body := b.ticket(m.ID)
		if code != 200 || !strings.Contains(body, `"ticket"`) {
			t.Fatalf("ticket of the session: %d %s", code, body)
		}
		// Another site's page cannot use the browser's session.
		req := mustRequest(t, "POST", b.base+"/api/meetings/"+m.ID+"/ticket", []byte(`{}`))
		req.Header.Set("Origin", "https://evil.example")
		if code := b.send(req); code != http.StatusForbidden {
			t.Fatalf("cross-site ticket: %d", code)
		}
		if res, _ := b.do("POST", b.base+"/auth/logout", nil, ""); res.StatusCode != http.StatusNoContent {
			t.Fatalf("logout: %s", res.Status)
		}
		if _, who := b.whoami(m.ID); who != "" {
			t.Fatalf("after logout, signed in as %q", who)
		}
		// The old session ID, kept by an attacker, is dead too.
		req = mustRequest(t, "POST", b.base+"/api/meetings/"+m.ID+"/ticket", []byte(`{}`))
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sid.Value})
		if code := b.send(req); code != http.StatusUnauthorized {
			t.Fatalf("ticket with the ended session: %d", code)
		}
	})

	t.Run("state mismatch", func(t *testing.T) {
		b := newWebBrowser(t, s, p)
		cb, _ := url.Parse(b.toProvider(m.ID, "alice", "alice-idp"))
		q := cb.Query()
		q.Set("state", "not-"+q.Get("state"))
		cb.RawQuery = q.Encode()
		if res, body := b.do("GET", cb.String(), nil, ""); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not match") {
			t.Fatalf("callback with another state: %s %s", res.Status, body)
		}
		// An answer naming another provider as its issuer (RFC 9207).
		cb, _ = url.Parse(b.toProvider(m.ID, "alice", "alice-idp"))
		q = cb.Query()
		q.Set("iss", "https://idp.elsewhere.example")
		cb.RawQuery = q.Encode()
		if res, body := b.do("GET", cb.String(), nil, ""); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "another identity provider") {
			t.Fatalf("callback naming another issuer: %s %s", res.Status, body)
		}
		// Another browser (no sign-in cookie) bringing a good callback.
		good := b.toProvider(m.ID, "alice", "alice-idp")
		other := newWebBrowser(t, s, p)
		if res, body := other.do("GET", good, nil, ""); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "did not start in this browser") {
			t.Fatalf("callback without the sign-in cookie: %s %s", res.Status, body)
		}
		if _, who := other.whoami(m.ID); who != "" {
			t.Fatalf("signed in as %q", who)
		}
	})

	t.Run("refused code", func(t *testing.T) {
		b := newWebBrowser(t, s, p)
		cb, _ := url.Parse(b.toProvider(m.ID, "alice", "alice-idp"))
		q := cb.Query()
		q.Set("code", "made-up")
		cb.RawQuery = q.Encode()
		if res, body := b.do("GET", cb.String(), nil, ""); res.StatusCode != http.StatusForbidden || !strings.Contains(body, "did not accept") {
			t.Fatalf("callback with a refused code: %s %s", res.Status, body)
		}
		if _, who := b.whoami(m.ID); who != "" {
			t.Fatalf("signed in as %q", who)
		}
	})

	t.Run("refused token", func(t *testing.T) {
		// carol signs in at her provider, but the directory does not know her.
		b := newWebBrowser(t, s, p)
		res, body := b.do("GET", b.toProvider(m.ID, "carol", "carol-idp"), nil, "")
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "may not use this service") ||
			!strings.Contains(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("callback for an unknown user: %s %s", res.Status, body)
		}
		if _, who := b.whoami(m.ID); who != "" {
			t.Fatalf("signed in as %q", who)
		}
	})

	t.Run("no provider for the meeting", func(t *testing.T) {
		b := newWebBrowser(t, s, p)
		if res, _ := b.do("GET", b.base+"/auth/login?meeting=nosuchmeeting", nil, ""); res.StatusCode != http.StatusNotFound {
			t.Fatalf("login for no meeting: %s", res.Status)
		}
		if signIn, _ := b.whoami("nosuchmeeting"); signIn {
			t.Fatal("sign_in offered for no meeting")
		}
	})

	t.Run("disabled at the provider", func(t *testing.T) {
		b := newWebBrowser(t, s, p)
		b.signIn(m.ID, "bob", "bob-idp")
		if code, body := b.ticket(m.ID); code != 200 {
			t.Fatalf("bob's ticket: %d %s", code, body)
		}
		if err := p.SetUserEnabled(t.Context(), "bob", false); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.SetUserEnabled(t.Context(), "bob", true) })
		if code, body := b.ticket(m.ID); code != http.StatusForbidden {
			t.Fatalf("ticket of a user disabled at the provider: %d %s", code, body)
		}
		if _, who := b.whoami(m.ID); who != "" {
			t.Fatalf("still signed in as %q", who)
		}
	})

	t.Run("disabled by the admin", func(t *testing.T) {
		b := newWebBrowser(t, s, p)
		b.signIn(m.ID, "alice", "alice-idp")
		if code, body := b.ticket(m.ID); code != 200 {
			t.Fatalf("alice's ticket: %d %s", code, body)
		}
		s.admin(t).must("PATCH", "/users/sip:alice@example.test", `{"enabled":false}`, 200, nil)
		if _, who := b.whoami(m.ID); who != "" {
			t.Fatalf("still signed in as %q after the admin disabled her", who)
		}
		if code, body := b.ticket(m.ID); code != http.StatusUnauthorized {
			t.Fatalf("ticket of a disabled user: %d %s", code, body)
		}
	})

	t.Run("sign-ins in flight from one address are bounded", func(t *testing.T) {
		// Last: it leaves the table full for this address.
		// (The subtests above left a few abandoned.)
		b := newWebBrowser(t, s, p)
		started := 0
		for range maxPerSource + 1 {
			res, body := b.do("GET", b.base+"/auth/login?meeting="+m.ID, nil, "")
			if res.StatusCode == http.StatusTooManyRequests {
				break
			}
			if res.StatusCode != http.StatusFound {
				t.Fatalf("sign-in %d: %s %s", started+1, res.Status, body)
			}
			started++
		}
		if started < maxPerSource-5 || started == maxPerSource+1 {
			t.Fatalf("%d sign-ins started from one address, want at most %d in flight", started, maxPerSource)
		}
	})
}

func TestWebSignInExpires(t *testing.T) {
	s, p, m := webSSOServer(t, false, func(c *oidctest.Config) { c.AccessTokenLifetime = 3 * time.Second })
	b := newWebBrowser(t, s, p)
	var sid string
	for _, c := range b.signIn(m.ID, "alice", "alice-idp").Cookies() {
		if c.Name == sessionCookie {
			sid = c.Value
		}
	}
	if code, body := b.ticket(m.ID); code != 200 {
		t.Fatalf("ticket: %d %s", code, body)
	}
	time.Sleep(3500 * time.Millisecond)
	// The browser's cookie has expired with the token; a browser that
	// kept it is refused too.
	if _, who := b.whoami(m.ID); who != "" {
		t.Fatalf("signed in as %q after the token expired", who)
	}
	req := mustRequest(t, "POST", b.base+"/api/meetings/"+m.ID+"/ticket", []byte(`{}`))
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sid})
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "sign-in has ended") {
		t.Fatalf("ticket with the expired session: %s %s", res.Status, body)
	}
}

// TestWebClientSignsInWithOrganization is the web client in headless
// Chromium (e2e/client.mjs org-sign-in): alice opens the meeting's link,
// signs in on her provider's own login page, comes back and joins as
// herself, the organizer, admitting a guest who came with the key.
func TestWebClientSignsInWithOrganization(t *testing.T) {
	browserTools(t)
	s, p, m := webSSOServer(t, false, nil)
	// Chromium is told to accept the server's key and the provider's, no other.
	spki := func(c *http.Client, u string) string {
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		sum := sha256.Sum256(res.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)
		return base64.StdEncoding.EncodeToString(sum[:])
	}
	join := "https://" + s.listeners["https"] + "/meet/" + m.ID
	bm := &browserMeeting{s: s, m: m, url: join,
		spki: spki(s.httpsClient(t), join) + "," + spki(p.HTTPClient, p.Issuer+"/.well-known/openid-configuration")}
	t.Setenv("PARLEY_ORG_PASSWORD", "alice-idp")
	bm.run(t, "org-sign-in", nil)
	screenshot(t, "org-join.png")
	screenshot(t, "org-sign-in.png")
}
