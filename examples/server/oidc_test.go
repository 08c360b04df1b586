package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/oidctest"
	"github.com/parleyuc/parley/parleytest"
)

func TestOIDCConfigErrorsNameTheField(t *testing.T) {
	dir := auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: "example.test"}); err != nil {
		t.Fatal(err)
	}
	ok := oidcProvider{Issuer: "https://idp.example.com", ClientID: "parley", Tenant: "example.test"}
	tests := []struct {
		name  string
		edit  func(*oidcProvider)
		field string
	}{
		{"no issuer", func(p *oidcProvider) { p.Issuer = "" }, `"oidc[1].issuer"`},
		{"plain http issuer", func(p *oidcProvider) { p.Issuer = "http://idp.example.com" }, `"oidc[1].issuer"`},
		{"no client", func(p *oidcProvider) { p.ClientID = "" }, `"oidc[1].client_id"`},
		{"no tenant", func(p *oidcProvider) { p.Tenant, p.Tenants = "", nil }, `"oidc[1].tenant"`},
		{"unknown tenant", func(p *oidcProvider) { p.Tenant = "nowhere.test" }, `"oidc[1].tenant"`},
		{"unknown second tenant", func(p *oidcProvider) { p.Tenant, p.Tenants = "", []string{"nowhere.test"} }, `"oidc[1].tenants[0]"`},
		{"license claim without value", func(p *oidcProvider) { p.LicenseClaim = "groups" }, `"oidc[1].license_claim"`},
		{"admin value without claim", func(p *oidcProvider) { p.AdminValue = "admins" }, `"oidc[1].admin_claim"`},
		{"negative userinfo interval", func(p *oidcProvider) { p.UserInfoInterval = -1 }, `"oidc[1].userinfo_interval"`},
		{"CA file missing", func(p *oidcProvider) { p.CAFile = filepath.Join(t.TempDir(), "none.pem") }, `"oidc[1].ca_file"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := ok
			second.Tenant = ""
			second.Tenants = []string{"other.test"}
			if err := dir.PutTenant(auth.Tenant{Domain: "other.test"}); err != nil {
				t.Fatal(err)
			}
			tt.edit(&second)
			first := ok
			first.Tenant = "example.test"
			_, err := oidcSettings{OIDC: []oidcProvider{first, second}}.signIn(dir)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v, want one naming %s", err, tt.field)
			}
		})
	}
	t.Run("a tenant signed in by two providers", func(t *testing.T) {
		_, err := oidcSettings{OIDC: []oidcProvider{ok, ok}}.signIn(dir)
		if err == nil || !strings.Contains(err.Error(), `"oidc[1].tenant"`) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("static admin token", func(t *testing.T) {
		for _, c := range []struct {
			s    oidcSettings
			want bool
		}{{oidcSettings{}, true}, {oidcSettings{OIDC: []oidcProvider{ok}}, false}, {oidcSettings{OIDC: []oidcProvider{ok}, AdminTokenWithOIDC: true}, true}} {
			got, err := c.s.signIn(dir)
			if err != nil || got.staticAdminToken != c.want {
				t.Fatalf("%+v: static admin token %v, %v; want %v", c.s, got.staticAdminToken, err, c.want)
			}
		}
	})
}

// oidcServer starts a provider process and the server configured, in its
// config file, to sign the demo tenant's users in with it.
func oidcServer(t *testing.T, keepAdminToken bool) (*server, *oidctest.Provider) {
	t.Helper()
	return oidcServerWith(t, keepAdminToken, nil)
}

// oidcServerWith is oidcServer with the provider's config changed by edit
// first (nil: none).
func oidcServerWith(t *testing.T, keepAdminToken bool, edit func(*oidctest.Config)) (*server, *oidctest.Provider) {
	t.Helper()
	pcfg := oidctest.Config{
		Users: []oidctest.User{
			{Username: "alice", Password: "alice-idp", Claims: map[string]any{"email": "alice@example.test", "email_verified": true,
				"groups": []string{"parley-users", "parley-admins"}}},
			{Username: "bob", Password: "bob-idp", Claims: map[string]any{"email": "bob@example.test", "email_verified": true,
				"groups": []string{"parley-users"}}},
		},
		Clients: []oidctest.Client{{ClientID: "parley", DeviceFlow: true}},
	}
	if edit != nil {
		edit(&pcfg)
	}
	p := oidctest.Start(t, pcfg)
	data := t.TempDir()
	cfg := map[string]any{
		"oidc": []map[string]any{{"issuer": p.Issuer, "client_id": "parley", "tenant": "example.test", "scopes": []string{"sip"},
			"license_claim": "groups", "license_value": "parley-users", "admin_claim": "groups", "admin_value": "parley-admins",
			"check_userinfo": true, "ca_file": p.CAFile}},
		"admin_token_with_oidc": keepAdminToken,
	}
	b, _ := json.Marshal(cfg)
	file := filepath.Join(t.TempDir(), "server.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return startServerArgs(t, data, append(allOnPortZero(data), "-config", file)), p
}

func token(t *testing.T, p *oidctest.Provider, user string) string {
	t.Helper()
	tok, err := p.DeviceToken(t.Context(), "parley", user, "openid email sip")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func TestOIDCSignInOverSIP(t *testing.T) {
	s, p := oidcServer(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// alice's demo password no longer signs her in: the Bearer challenge
	// naming the provider is all she is offered.
	u := s.sipUser(t, "", "", "localhost")
	req := u.request(sip.REGISTER, "sip:example.test", sip.NewHeader("From", "<sip:alice@example.test>;tag=x"),
		sip.NewHeader("To", "<sip:alice@example.test>"))
	res, err := u.do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		cs = append(cs, h.Value())
	}
	if res.StatusCode != 401 || len(cs) != 1 || !strings.Contains(cs[0], `authz_server="`+p.Issuer+`"`) {
		t.Fatalf("REGISTER: %d %q, want 401 with the Bearer challenge only", res.StatusCode, cs)
	}
	// Answering with her password is not possible: no Digest challenge.
	if r, err := options(t, s, "localhost", "alice", s.passwords["sip:alice@example.test"]); err == nil && r.StatusCode == 200 {
		t.Fatal("alice signed in with her Digest password")
	}

	dial := func(name, tok string) *parleytest.Client {
		c, err := parleytest.Dial(parleytest.ClientConfig{Addr: s.listeners["sip-tls"], ServerName: "localhost", Verifier: s.verifier(t),
			Domain: "example.test", AOR: "sip:" + name + "@example.test", Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.HangUp)
		return c
	}
	alice, bob := dial("alice", token(t, p, "alice")), dial("bob", token(t, p, "bob"))
	if err := alice.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.Send(ctx, "sip:bob@example.test", "hello from a token"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-bob.Messages():
		if m.Text != "hello from a token" {
			t.Fatalf("bob got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("bob got no message")
	}
}

func adminStatus(t *testing.T, s *server, token string) int {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+s.listeners["https"]+"/admin/v1/users", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.httpsClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

func TestOIDCAdminAPI(t *testing.T) {
	s, p := oidcServer(t, false)
	if code := adminStatus(t, s, token(t, p, "alice")); code != 200 {
		t.Fatalf("alice, in the admin group: %d", code)
	}
	if code := adminStatus(t, s, token(t, p, "bob")); code != 403 {
		t.Fatalf("bob, not an admin: %d, want 403", code)
	}
	if code := adminStatus(t, s, s.admin(t).token); code != 401 {
		t.Fatalf("the static admin token with a provider configured: %d, want 401", code)
	}
	// Disabled at the provider: the admin's token is refused at once.
	tok := token(t, p, "alice")
	if err := p.SetUserEnabled(t.Context(), "alice", false); err != nil {
		t.Fatal(err)
	}
	if code := adminStatus(t, s, tok); code != 401 {
		t.Fatalf("alice, disabled at the provider: %d, want 401", code)
	}
}

func TestOIDCKeepsStaticAdminTokenWhenAsked(t *testing.T) {
	s, _ := oidcServer(t, true)
	if code := adminStatus(t, s, s.admin(t).token); code != 200 {
		t.Fatalf("the static admin token kept by admin_token_with_oidc: %d", code)
	}
}
