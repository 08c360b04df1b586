package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/internal/oidctest"
)

// oidcSetup is an identity provider process and an examples/server
// process whose demo tenant signs in with it.
type oidcSetup struct {
	p   *oidctest.Provider
	srv *serverProcess
	dir string // the token caches
}

func startOIDC(t *testing.T) *oidcSetup {
	t.Helper()
	p := oidctest.Start(t, oidctest.Config{
		Users: []oidctest.User{
			{Username: "alice", Password: "alice-idp", Claims: map[string]any{"email": "alice@example.test", "email_verified": true,
				"groups": []string{"parley-users", "parley-admins"}}},
			{Username: "bob", Password: "bob-idp", Claims: map[string]any{"email": "bob@example.test", "email_verified": true,
				"groups": []string{"parley-users"}}},
		},
		Clients: []oidctest.Client{{ClientID: "parley", DeviceFlow: true, RedirectURIs: []string{"http://127.0.0.1/callback"}}},
	})
	cfg, _ := json.Marshal(map[string]any{"oidc": []map[string]any{{"issuer": p.Issuer, "client_id": "parley", "tenant": "example.test",
		"scopes": []string{"sip"}, "license_claim": "groups", "license_value": "parley-users",
		"admin_claim": "groups", "admin_value": "parley-admins", "ca_file": p.CAFile}}})
	file := filepath.Join(t.TempDir(), "server.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return &oidcSetup{p: p, srv: startServer(t, t.TempDir(), "-config", file), dir: t.TempDir()}
}

// cache is user's token file.
func (o *oidcSetup) cache(user string) string { return filepath.Join(o.dir, user+".json") }

// args are the global flags for user signed in with tokens, then args.
func (o *oidcSetup) args(user string, args ...string) []string {
	return append([]string{"-token-cache", o.cache(user)}, args...)
}

// deviceLogin runs login for user and signs in on the provider's page
// with the code it prints, as the user does in a browser.
func (o *oidcSetup) deviceLogin(t *testing.T, user string) {
	t.Helper()
	c := startClient(t, o.srv, user, o.args(user, "login", "-provider-ca", o.p.CAFile)...)
	f := strings.Fields(c.waitLine(t, "login-code ", wait))
	if len(f) != 3 || !strings.HasPrefix(f[2], o.p.Issuer+"/") {
		t.Fatalf("login-code line %q", f)
	}
	if err := o.p.Approve(t.Context(), f[1], user); err != nil {
		t.Fatal(err)
	}
	c.waitLine(t, "logged-in sip:"+user+"@example.test "+o.p.Issuer, wait)
	if code := c.wait(t, wait); code != 0 {
		t.Fatalf("login: exit %d\n%s", code, c.stderr.String())
	}
	fi, err := os.Stat(o.cache(user))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token cache: %v, %v; want mode 0600", fi, err)
	}
}

// browserLogin runs login -browser for user and plays the browser: it
// opens the URL the client prints, signs in on the provider's form, and
// follows the redirect to the client's loopback listener.
func (o *oidcSetup) browserLogin(t *testing.T, user, password string) {
	t.Helper()
	c := startClient(t, o.srv, user, o.args(user, "login", "-browser", "-provider-ca", o.p.CAFile)...)
	raw := strings.TrimPrefix(c.waitLine(t, "login-browser ", wait), "login-browser ")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
		t.Fatalf("authorization URL %s lacks PKCE or a loopback redirect", raw)
	}
	res, err := o.p.HTTPClient.Get(raw) // the login page
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	form := url.Values{"username": {user}, "password": {password}}
	for _, k := range []string{"client_id", "redirect_uri", "state", "scope", "code_challenge"} {
		form.Set(k, q.Get(k))
	}
	res, err = o.p.HTTPClient.PostForm(o.p.Issuer+"/authorize", form) // follows the redirect to the client
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the client's loopback answered %s", res.Status)
	}
	c.waitLine(t, "logged-in sip:"+user+"@example.test", wait)
	if code := c.wait(t, wait); code != 0 {
		t.Fatalf("login -browser: exit %d\n%s", code, c.stderr.String())
	}
}

// TestLoginEndToEnd: with the provider process and the server process,
// alice signs in with the device flow and bob in a browser; with their
// tokens they see each other's presence, exchange a message, schedule and
// join a meeting; logout forgets alice's tokens and revokes her refresh
// token.
func TestLoginEndToEnd(t *testing.T) {
	o := startOIDC(t)

	// Before login the tenant's users cannot sign in with passwords.
	r := runClient(t, o.srv, "alice", o.args("alice", "send", "bob", "hello")...)
	if r.code != 1 || !strings.Contains(r.stderr, "Digest") {
		t.Fatalf("send before login: exit %d\nstderr:\n%s", r.code, r.stderr)
	}

	o.deviceLogin(t, "alice")
	o.browserLogin(t, "bob", "bob-idp")

	alice := startClient(t, o.srv, "alice", o.args("alice", "online", "-watch", "bob")...)
	alice.waitLine(t, "signed-in sip:alice@example.test", wait)
	bob := startClient(t, o.srv, "bob", o.args("bob", "online", "-status", "busy")...)
	bob.waitLine(t, "signed-in sip:bob@example.test", wait)
	alice.waitLine(t, "presence sip:bob@example.test busy", wait)
	alice.send(t, "send bob signed in with my organization")
	alice.waitLine(t, "sent sip:bob@example.test", wait)
	if got := bob.waitLine(t, "message ", wait); got != "message sip:alice@example.test signed in with my organization" {
		t.Fatalf("bob got %q", got)
	}

	r = runClient(t, o.srv, "alice", o.args("alice", "schedule", "-subject", "Tokens")...)
	var m meeting
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
		t.Fatalf("schedule: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	host := startClient(t, o.srv, "alice", o.args("alice", "join", m.ID)...)
	host.waitLine(t, "joined "+m.ID, wait)
	guest := startClient(t, o.srv, "bob", o.args("bob", "join", m.ID)...)
	guest.waitLine(t, "joined "+m.ID, wait)

	// alice, an admin at the provider, runs the admin command line with
	// her login's token file; bob's token is refused there, and the
	// static admin token is off once a provider is configured.
	admin := func(tokenFile string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin.admin, append([]string{"-https", o.srv.listeners["https"], "-ca", o.srv.caFile(),
			"-token-file", tokenFile}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := admin(o.cache("alice"), "users"); err != nil || !strings.Contains(out, "sip:bob@example.test") {
		t.Fatalf("parley-admin with alice's token: %v\n%s", err, out)
	}
	if out, err := admin(o.cache("bob"), "users"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("parley-admin with bob's token: %v\n%s", err, out)
	}
	if out, err := admin(filepath.Join(o.srv.dataDir, "admin-token"), "users"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("parley-admin with the static token: %v\n%s", err, out)
	}
	// A device account allowed its password signs in with Digest.
	if out, err := admin(o.cache("alice"), "user", "set", "sip:bob@example.test", "-password-sign-in"); err != nil {
		t.Fatalf("allow bob's password: %v\n%s", err, out)
	}
	r = runClient(t, o.srv, "bob", "-token-cache", filepath.Join(o.dir, "none.json"), "send", "alice", "from a phone")
	if r.code != 0 {
		t.Fatalf("bob with his password, allowed: exit %d\n%s", r.code, r.stderr)
	}

	var cached tokenCache
	data, err := os.ReadFile(o.cache("alice"))
	if err != nil || json.Unmarshal(data, &cached) != nil || cached.RefreshToken == "" {
		t.Fatalf("alice's token cache: %v\n%s", err, data)
	}
	r = runClient(t, o.srv, "alice", o.args("alice", "logout")...)
	if r.code != 0 || r.stdout != "revoked "+o.p.Issuer+"\nlogged-out sip:alice@example.test\n" {
		t.Fatalf("logout: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(o.cache("alice")); !os.IsNotExist(err) {
		t.Fatalf("the token cache is still there: %v", err)
	}
	if _, err := o.p.Refresh(t.Context(), "parley", cached.RefreshToken); err == nil {
		t.Fatal("alice's refresh token still works after logout")
	}
}

// A token about to expire is refreshed before it is used, and the cache
// file keeps the new tokens (the provider rotates refresh tokens).
func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	p := oidctest.Start(t, oidctest.Config{
		Users:   []oidctest.User{{Username: "alice", Password: "pw", Claims: map[string]any{"email": "alice@example.test"}}},
		Clients: []oidctest.Client{{ClientID: "parley", DeviceFlow: true}}})
	tok, err := p.DeviceToken(t.Context(), "parley", "alice", "openid")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens", "alice.json")
	old := tokenCache{User: "sip:alice@example.test", Issuer: p.Issuer, ClientID: "parley", TokenEndpoint: p.Issuer + "/token",
		ProviderCA: p.CAFile, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(refreshMargin / 2)}
	if err := saveTokens(path, old); err != nil {
		t.Fatal(err)
	}
	e := &env{opts: options{tokenCache: path, timeout: 10 * time.Second}}
	ts, err := e.loadTokens("sip:alice@example.test")
	if err != nil || ts == nil {
		t.Fatalf("loadTokens: %v, %v", ts, err)
	}
	got, err := ts.token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got == old.AccessToken || time.Until(ts.expiry()) < refreshMargin {
		t.Fatalf("the token due to expire was not refreshed (expiry %v)", ts.expiry())
	}
	var saved tokenCache
	data, _ := os.ReadFile(path)
	if json.Unmarshal(data, &saved) != nil || saved.AccessToken != got || saved.RefreshToken == old.RefreshToken {
		t.Fatalf("cache after the refresh:\n%s", data)
	}
	if again, _ := ts.token(t.Context()); again != got {
		t.Fatal("a fresh token was refreshed again")
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("token directory: %v, %v; want mode 0700", fi, err)
	}
}

// A session outlives its short-lived tokens: online and watch refresh the
// token before it expires and renew the sign-in with it, so the server
// never signs the device out.
func TestOnlineRenewsShortLivedTokens(t *testing.T) {
	p := oidctest.Start(t, oidctest.Config{AccessTokenLifetime: 6 * time.Second,
		Users: []oidctest.User{
			{Username: "alice", Password: "a", Claims: map[string]any{"email": "alice@example.test", "email_verified": true}},
			{Username: "bob", Password: "b", Claims: map[string]any{"email": "bob@example.test", "email_verified": true}},
		},
		Clients: []oidctest.Client{{ClientID: "parley", DeviceFlow: true}}})
	cfg, _ := json.Marshal(map[string]any{"oidc": []map[string]any{{"issuer": p.Issuer, "client_id": "parley", "tenant": "example.test",
		"ca_file": p.CAFile}}})
	file := filepath.Join(t.TempDir(), "server.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	o := &oidcSetup{p: p, srv: startServer(t, t.TempDir(), "-config", file), dir: t.TempDir()}
	o.deviceLogin(t, "alice")
	o.deviceLogin(t, "bob")
	alice := startClient(t, o.srv, "alice", o.args("alice", "online", "-watch", "bob")...)
	alice.waitLine(t, "signed-in sip:alice@example.test", wait)
	bob := startClient(t, o.srv, "bob", o.args("bob", "online")...)
	bob.waitLine(t, "signed-in sip:bob@example.test", wait)
	alice.waitLine(t, "presence sip:bob@example.test available", wait)
	// alice also watches from a script, sharing her token file with the
	// online session: whichever refreshes first, the other reads it.
	watch := startClient(t, o.srv, "alice", o.args("alice", "watch", "-for", "25s", "bob")...)
	watch.waitLine(t, "presence sip:bob@example.test available", wait)

	time.Sleep(15 * time.Second) // two and a half token lifetimes
	bob.send(t, "status busy")
	alice.waitLine(t, "presence sip:bob@example.test busy", wait)
	watch.waitLine(t, "presence sip:bob@example.test busy", wait)
	alice.send(t, "send bob still here")
	alice.waitLine(t, "sent sip:bob@example.test", wait)
	if got := bob.waitLine(t, "message ", wait); got != "message sip:alice@example.test still here" {
		t.Fatalf("bob got %q", got)
	}
	for _, c := range []*clientProcess{alice, bob, watch} {
		if strings.Contains(c.stderr.String(), "closed") {
			t.Fatalf("%s lost its connection:\n%s", c.name, c.stderr.String())
		}
	}
	all := strings.Join(alice.stdout.Lines(), "\n")
	_, after, _ := strings.Cut(all, "presence sip:bob@example.test available")
	if strings.Contains(after, "presence sip:bob@example.test offline") {
		t.Fatalf("alice saw bob offline while his tokens were renewed:\n%s", all)
	}
}
