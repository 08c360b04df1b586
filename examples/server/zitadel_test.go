package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleyuc/parley/internal/oidctest"
)

// TestWebClientSignsInWithZitadel is TestWebClientSignsInWithOrganization
// against a provider written by someone else, the example OpenID Connect
// provider of github.com/zitadel/oidc/v3 in its own process: in headless
// Chromium alice opens the meeting's link, signs in on zitadel's own login
// page, comes back and joins as herself, the organizer.
func TestWebClientSignsInWithZitadel(t *testing.T) {
	browserTools(t)
	z := oidctest.StartZitadel(t, oidctest.ZitadelConfig{
		Users: []oidctest.ZitadelUser{{Username: "alice", Password: "alice-zitadel", Email: "alice@example.test", Admin: true}},
		// The server's callback; zitadel matches a loopback redirect URI
		// on any port.
		RedirectURIs: []string{"https://127.0.0.1/auth/callback"},
	})
	data := t.TempDir()
	// zitadel/oidc's JWT access tokens carry no scope claim: no scopes
	// are required of them.
	cfg, _ := json.Marshal(map[string]any{"oidc": []map[string]any{{"issuer": z.Issuer, "client_id": "parley", "tenant": "example.test",
		"admin_claim": "groups", "admin_value": "parley-admins", "check_userinfo": true, "ca_file": z.CAFile}}})
	file := filepath.Join(t.TempDir(), "server.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, data, append(allOnPortZero(data), "-config", file))

	// alice schedules the meeting with a token from zitadel's device flow.
	tok, err := z.DeviceToken(t.Context(), "alice", "openid email")
	if err != nil {
		t.Fatal(err)
	}
	req := mustRequest(t, "POST", "https://"+s.listeners["https"]+"/api/meetings", []byte(`{"subject":"Interop","access":"organization"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err := s.httpsClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var m scheduled
	if res.StatusCode != http.StatusCreated || json.NewDecoder(bytes.NewReader(body)).Decode(&m) != nil {
		t.Fatalf("schedule with zitadel's token: %s %s", res.Status, body)
	}

	// Chromium is told to accept the server's key and zitadel's, no other.
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
		spki: spki(s.httpsClient(t), join) + "," + spki(z.HTTPClient, z.Issuer+"/.well-known/openid-configuration")}
	t.Setenv("PARLEY_ORG_PASSWORD", "alice-zitadel")
	t.Setenv("PARLEY_ORG_SUBMIT", `button[type="submit"]`) // zitadel's login form
	t.Setenv("PARLEY_ORG_SHOTS", "zitadel")
	bm.run(t, "org-sign-in", nil)
	screenshot(t, "zitadel-join.png")
	screenshot(t, "zitadel-sign-in.png")
}
