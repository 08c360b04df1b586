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

// TestLoginWithZitadel is TestLoginEndToEnd against a provider written by
// someone else, the example OpenID Connect provider of
// github.com/zitadel/oidc/v3 in its own process: alice logs in with the
// device flow on its device pages, bob in a browser on its login page
// (the loopback redirect); with its tokens they see each other's
// presence, exchange a message and meet; tokens near expiry are refreshed
// at zitadel; alice, in its admin group, may use the admin API and bob may
// not; logout revokes alice's refresh token there.
func TestLoginWithZitadel(t *testing.T) {
	z := oidctest.StartZitadel(t, oidctest.ZitadelConfig{
		Users: []oidctest.ZitadelUser{
			{Username: "alice", Password: "alice-zitadel", Email: "alice@example.test", Admin: true},
			{Username: "bob", Password: "bob-zitadel", Email: "bob@example.test"},
		},
		RedirectURIs: []string{"http://127.0.0.1/callback"},
	})
	// zitadel/oidc's JWT access tokens carry no scope claim: no scopes
	// are required of them.
	cfg, _ := json.Marshal(map[string]any{"oidc": []map[string]any{{"issuer": z.Issuer, "client_id": "parley", "tenant": "example.test",
		"admin_claim": "groups", "admin_value": "parley-admins", "ca_file": z.CAFile}}})
	file := filepath.Join(t.TempDir(), "server.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, t.TempDir(), "-config", file)
	dir := t.TempDir()
	cache := func(user string) string { return filepath.Join(dir, user+".json") }
	args := func(user string, a ...string) []string { return append([]string{"-token-cache", cache(user)}, a...) }

	// alice: the device flow, approved on zitadel's device pages.
	c := startClient(t, srv, "alice", args("alice", "login", "-provider-ca", z.CAFile)...)
	f := strings.Fields(c.waitLine(t, "login-code ", wait))
	if len(f) != 3 || f[2] != z.Issuer+"/device" {
		t.Fatalf("login-code line %q", f)
	}
	if err := z.Approve(t.Context(), f[1], "alice"); err != nil {
		t.Fatal(err)
	}
	c.waitLine(t, "logged-in sip:alice@example.test "+z.Issuer, wait)
	if code := c.wait(t, wait); code != 0 {
		t.Fatalf("login: exit %d\n%s", code, c.stderr.String())
	}

	// bob: authorization code with PKCE, signing in on zitadel's login
	// page, redirected to the client's loopback listener.
	c = startClient(t, srv, "bob", args("bob", "login", "-browser", "-provider-ca", z.CAFile)...)
	authURL := strings.TrimPrefix(c.waitLine(t, "login-browser ", wait), "login-browser ")
	back, err := z.SignIn(t.Context(), authURL, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if back.Host == "" || !strings.HasPrefix(back.String(), "http://127.0.0.1:") || back.Query().Get("code") == "" {
		t.Fatalf("zitadel redirected to %s", back)
	}
	res, err := http.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the client's loopback answered %s", res.Status)
	}
	c.waitLine(t, "logged-in sip:bob@example.test "+z.Issuer, wait)
	if code := c.wait(t, wait); code != 0 {
		t.Fatalf("login -browser: exit %d\n%s", code, c.stderr.String())
	}

	alice := startClient(t, srv, "alice", args("alice", "online", "-watch", "bob")...)
	alice.waitLine(t, "signed-in sip:alice@example.test", wait)
	bob := startClient(t, srv, "bob", args("bob", "online", "-status", "busy")...)
	bob.waitLine(t, "signed-in sip:bob@example.test", wait)
	alice.waitLine(t, "presence sip:bob@example.test busy", wait)
	alice.send(t, "send bob signed in at zitadel")
	alice.waitLine(t, "sent sip:bob@example.test", wait)
	if got := bob.waitLine(t, "message ", wait); got != "message sip:alice@example.test signed in at zitadel" {
		t.Fatalf("bob got %q", got)
	}
	r := runClient(t, srv, "alice", args("alice", "schedule", "-subject", "Interop")...)
	var m meeting
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &m) != nil {
		t.Fatalf("schedule: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	host := startClient(t, srv, "alice", args("alice", "join", m.ID)...)
	host.waitLine(t, "joined "+m.ID, wait)
	guest := startClient(t, srv, "bob", args("bob", "join", m.ID)...)
	guest.waitLine(t, "joined "+m.ID, wait)

	// A token due for a refresh, of either login, is refreshed at
	// zitadel before the next command uses it.
	for _, user := range []string{"alice", "bob"} {
		var before tokenCache
		data, err := os.ReadFile(cache(user))
		if err != nil || json.Unmarshal(data, &before) != nil || before.RefreshToken == "" {
			t.Fatalf("%s's token cache: %v\n%s", user, err, data)
		}
		before.Expiry = time.Now().Add(refreshMargin / 2)
		if err := saveTokens(cache(user), before); err != nil {
			t.Fatal(err)
		}
		if r := runClient(t, srv, user, args(user, "send", "alice", "refreshed")...); r.code != 0 {
			t.Fatalf("%s: send with a token due for refresh: exit %d\n%s", user, r.code, r.stderr)
		}
		var after tokenCache
		data, _ = os.ReadFile(cache(user))
		if json.Unmarshal(data, &after) != nil || after.AccessToken == before.AccessToken || after.RefreshToken == before.RefreshToken ||
			time.Until(after.Expiry) < refreshMargin {
			t.Fatalf("%s's token was not refreshed:\n%s", user, data)
		}
	}

	// The admin API takes alice's zitadel token (its groups claim) and
	// refuses bob's.
	admin := func(tokenFile string, a ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin.admin, append([]string{"-https", srv.listeners["https"], "-ca", srv.caFile(),
			"-token-file", tokenFile}, a...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := admin(cache("alice"), "users"); err != nil || !strings.Contains(out, "sip:bob@example.test") {
		t.Fatalf("parley-admin with alice's token: %v\n%s", err, out)
	}
	if out, err := admin(cache("bob"), "users"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("parley-admin with bob's token: %v\n%s", err, out)
	}

	var cached tokenCache
	data, _ := os.ReadFile(cache("alice"))
	if json.Unmarshal(data, &cached) != nil || cached.RefreshToken == "" {
		t.Fatalf("alice's token cache:\n%s", data)
	}
	r = runClient(t, srv, "alice", args("alice", "logout")...)
	if r.code != 0 || r.stdout != "revoked "+z.Issuer+"\nlogged-out sip:alice@example.test\n" {
		t.Fatalf("logout: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// The revoked refresh token no longer works at zitadel.
	res, err = z.HTTPClient.PostForm(cached.TokenEndpoint, url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {cached.RefreshToken}, "client_id": {"parley"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Fatal("alice's refresh token still works at zitadel after logout")
	}
}
