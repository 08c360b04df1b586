package oidctest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

func testConfig() Config {
	return Config{
		Users: []User{{Username: "alice", Password: "alice-pw", Claims: map[string]any{
			"email": "alice@example.test", "email_verified": true, "groups": []string{"parley-users"}}}},
		Clients: []Client{{ClientID: "parley-cli", DeviceFlow: true, Audience: []string{"parley"}}},
	}
}

// verifier checks tokens as a resource server does: discovery, the JWKS,
// issuer, audience and signature.
func verifier(t *testing.T, p *Provider) *oidc.IDTokenVerifier {
	t.Helper()
	ctx := oidc.ClientContext(t.Context(), p.HTTPClient)
	op, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return op.Verifier(&oidc.Config{ClientID: "parley", SupportedSigningAlgs: []string{oidc.ES256, oidc.RS256}})
}

func TestDeviceFlowTokensVerify(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			cfg := testConfig()
			cfg.Alg = alg
			p := Start(t, cfg)
			tok, err := p.DeviceToken(t.Context(), "parley-cli", "alice", "openid email")
			if err != nil {
				t.Fatal(err)
			}
			if tok.RefreshToken == "" || tok.IDToken == "" {
				t.Fatalf("token response lacks a refresh or ID token: %+v", tok)
			}
			at, err := verifier(t, p).Verify(oidc.ClientContext(t.Context(), p.HTTPClient), tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Email  string   `json:"email"`
				Groups []string `json:"groups"`
			}
			if err := at.Claims(&claims); err != nil || claims.Email != "alice@example.test" || len(claims.Groups) != 1 {
				t.Fatalf("claims %+v, %v", claims, err)
			}
			if h := header(t, tok.AccessToken); h["alg"] != alg || h["typ"] != "at+jwt" {
				t.Fatalf("header %v", h)
			}
		})
	}
}

func header(t *testing.T, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRotatedKeyStopsVerifying(t *testing.T) {
	p := Start(t, testConfig())
	tok, err := p.Mint(t.Context(), MintRequest{User: "alice", ClientID: "parley-cli"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RotateKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A fresh verifier fetches the JWKS after the rotation.
	if _, err := verifier(t, p).Verify(oidc.ClientContext(t.Context(), p.HTTPClient), tok); err == nil {
		t.Fatal("a token signed with the rotated-out key verified")
	}
	fresh, err := p.Mint(t.Context(), MintRequest{User: "alice", ClientID: "parley-cli"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(t, p).Verify(oidc.ClientContext(t.Context(), p.HTTPClient), fresh); err != nil {
		t.Fatalf("a token signed with the new key: %v", err)
	}
}

func TestDisabledUserCannotRefreshOrSignIn(t *testing.T) {
	p := Start(t, testConfig())
	ctx := t.Context()
	tok, err := p.DeviceToken(ctx, "parley-cli", "alice", "openid")
	if err != nil {
		t.Fatal(err)
	}
	next, err := p.Refresh(ctx, "parley-cli", tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refresh(ctx, "parley-cli", tok.RefreshToken); !errors.Is(err, ErrOAuth) {
		t.Fatalf("a used refresh token worked again: %v", err)
	}
	if err := p.SetUserEnabled(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refresh(ctx, "parley-cli", next.RefreshToken); !errors.Is(err, ErrOAuth) {
		t.Fatalf("a disabled user's refresh: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := p.DeviceToken(short, "parley-cli", "alice", "openid"); !errors.Is(err, ErrOAuth) {
		t.Fatalf("a disabled user signed in: %v", err)
	}
}

func TestExpiredMintedToken(t *testing.T) {
	p := Start(t, testConfig())
	tok, err := p.Mint(t.Context(), MintRequest{User: "alice", ClientID: "parley-cli", ExpiresIn: -60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(t, p).Verify(oidc.ClientContext(t.Context(), p.HTTPClient), tok); err == nil {
		t.Fatal("an expired token verified")
	}
}
