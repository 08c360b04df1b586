package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// testOP is a real OpenID Connect provider (mockoidc) on loopback whose
// published JWKS the test controls, to rotate keys.
type testOP struct {
	m           *mockoidc.MockOIDC
	kp          *mockoidc.Keypair // the provider's signing key
	jwks        atomic.Pointer[[]byte]
	jwksFetches atomic.Int32
}

func startOP(t testing.TB) *testOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatal(err)
	}
	op := &testOP{m: m, kp: m.Keypair}
	published, err := op.kp.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	op.jwks.Store(&published)
	_ = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.JWKSEndpoint {
				op.jwksFetches.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(*op.jwks.Load())
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return op
}

// publish sets the JWKS the provider serves to the union of the keys.
func (op *testOP) publish(t testing.TB, kps ...*mockoidc.Keypair) {
	t.Helper()
	var all []json.RawMessage
	for _, kp := range kps {
		b, err := kp.JWKS()
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(b, &set); err != nil {
			t.Fatal(err)
		}
		all = append(all, set.Keys...)
	}
	b, _ := json.Marshal(map[string]any{"keys": all})
	op.jwks.Store(&b)
}

func (op *testOP) provider() OIDCProvider {
	return OIDCProvider{Issuer: op.m.Issuer(), Audience: op.m.ClientID, UserClaim: "email"}
}

// signIn runs the OAuth 2.0 authorization code flow against the provider
// for user email, as a client would, and returns the ID token it issued.
func (op *testOP) signIn(t testing.TB, email string) string {
	t.Helper()
	op.m.QueueUser(&mockoidc.MockUser{Subject: "sub-" + email, Email: email, EmailVerified: true})
	conf := oauth2.Config{
		ClientID: op.m.ClientID, ClientSecret: op.m.ClientSecret,
		Endpoint:    oauth2.Endpoint{AuthURL: op.m.AuthorizationEndpoint(), TokenURL: op.m.TokenEndpoint()},
		RedirectURL: "http://127.0.0.1/callback", Scopes: []string{oidc.ScopeOpenID, "email"},
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(conf.AuthCodeURL("state-1", oidc.Nonce("nonce-1")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorization answered %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		t.Fatal("no id_token in the token response")
	}
	return id
}

// sign makes a token with the given key and claims, starting from what the
// provider issues.
func (op *testOP) sign(t testing.TB, kp *mockoidc.Keypair, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": op.m.Issuer(), "aud": op.m.ClientID, "sub": "sub-alice", "email": "alice@example.test",
		"email_verified": true, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	if edit != nil {
		edit(c)
	}
	tok, err := kp.SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newKeypair(t testing.TB) *mockoidc.Keypair {
	t.Helper()
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// bearerStatus sends a REGISTER with the token on a fresh connection.
func bearerStatus(t *testing.T, s *sipServer, token string) int {
	t.Helper()
	return s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>", "Authorization: Bearer "+token).StatusCode
}

func TestBearerTokenFromRealProvider(t *testing.T) {
	op := startOP(t)
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{op.provider()}})
	token := op.signIn(t, "alice@example.test")

	res := s.dial(t, "", nil).do("REGISTER", "sip:example.test", "<sip:alice@example.test>")
	var bearer string
	for _, c := range challenges(res) {
		if strings.HasPrefix(c, "Bearer ") {
			bearer = c
		}
	}
	if !strings.Contains(bearer, `realm="example.test"`) || !strings.Contains(bearer, `authz_server="`+op.m.Issuer()+`"`) {
		t.Fatalf("challenges %q lack an RFC 8898 Bearer challenge naming the provider", challenges(res))
	}
	if code := bearerStatus(t, s, token); code != 200 {
		t.Fatalf("REGISTER with the provider's token: %d, want 200", code)
	}
	id := s.lastServed()
	if id.URI != "sip:alice@example.test" || id.Method != MethodBearer || id.Expires.IsZero() {
		t.Fatalf("identity %+v", id)
	}
}

func TestBearerTokenRefusals(t *testing.T) {
	op := startOP(t)
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{op.provider()}})
	stranger := newKeypair(t)
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"expired beyond the clock skew", op.sign(t, op.kp, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), 401},
		{"wrong audience", op.sign(t, op.kp, func(c jwt.MapClaims) { c["aud"] = "some-other-service" }), 401},
		{"wrong issuer", op.sign(t, op.kp, func(c jwt.MapClaims) { c["iss"] = "https://idp.evil.test" }), 401},
		{"issuer name right, key unknown", op.sign(t, stranger, nil), 401},
		{"alg none", unsignedToken(op.m.Issuer(), op.m.ClientID), 401},
		{"tampered payload", tamper(op.sign(t, op.kp, nil)), 401},
		{"email not verified", op.sign(t, op.kp, func(c jwt.MapClaims) { c["email_verified"] = false }), 401},
		{"no user claim", op.sign(t, op.kp, func(c jwt.MapClaims) { delete(c, "email") }), 401},
		{"user not in the directory", op.sign(t, op.kp, func(c jwt.MapClaims) { c["email"] = "mallory@example.test" }), 403},
		{"disabled user", op.sign(t, op.kp, func(c jwt.MapClaims) { c["email"] = "carol@example.test" }), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := bearerStatus(t, s, tt.token); code != tt.want {
				t.Fatalf("%d, want %d", code, tt.want)
			}
		})
	}
	t.Run("expired within the clock skew", func(t *testing.T) {
		tok := op.sign(t, op.kp, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-20 * time.Second).Unix() })
		if code := bearerStatus(t, s, tok); code != 200 {
			t.Fatalf("%d, want 200 (within the 1 minute skew)", code)
		}
	})
}

func TestBearerKeyRotation(t *testing.T) {
	op := startOP(t)
	p := op.provider()
	p.KeyRefresh = 100 * time.Millisecond
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{p}})
	oldKey, newKey := op.kp, newKeypair(t)
	oldToken := op.sign(t, oldKey, nil)
	if code := bearerStatus(t, s, oldToken); code != 200 {
		t.Fatalf("token signed with the current key: %d", code)
	}

	// The provider rotates: it publishes the new key beside the old one
	// and signs with the new key. A token with the unknown key ID makes
	// the verifier fetch the JWKS again.
	op.publish(t, oldKey, newKey)
	if code := bearerStatus(t, s, op.sign(t, newKey, nil)); code != 200 {
		t.Fatalf("token signed after rotation: %d, want 200", code)
	}
	if code := bearerStatus(t, s, oldToken); code != 200 {
		t.Fatalf("old key still published, old token: %d, want 200", code)
	}

	// The provider removes the old key. After the next refresh, tokens
	// signed with it are refused.
	op.publish(t, newKey)
	deadline := time.Now().Add(5 * time.Second)
	for bearerStatus(t, s, oldToken) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("token signed with a removed key still accepted 5 s after removal")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := bearerStatus(t, s, op.sign(t, newKey, nil)); code != 200 {
		t.Fatalf("new key after the old was removed: %d", code)
	}
}

func TestHTTPMiddleware(t *testing.T) {
	op := startOP(t)
	th, _ := NewThrottle(ThrottleConfig{PerAddress: Limit{Rate: 1, Burst: 2}})
	a, err := New(Config{Directory: testDirectory(t), Realm: "example.test", OIDC: []OIDCProvider{op.provider()}, Throttle: th})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(a.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := IdentityFromContext(r.Context())
		_, _ = io.WriteString(w, id.URI)
	})))
	defer srv.Close()
	get := func(auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/me", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("Bearer " + op.signIn(t, "bob@example.test"))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "sip:bob@example.test" {
		t.Fatalf("with a token: %s %q", resp.Status, body)
	}
	resp = get("")
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Header.Values("WWW-Authenticate")) < 2 {
		t.Fatalf("without credentials: %s %v", resp.Status, resp.Header.Values("WWW-Authenticate"))
	}
	resp = get("")
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
}

func unsignedToken(iss, aud string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(map[string]any{"iss": iss, "aud": aud, "email": "alice@example.test", "email_verified": true,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	return head + "." + enc.EncodeToString(body) + "."
}

// tamper changes the payload of a signed token (the email claim) and
// keeps the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	enc := base64.RawURLEncoding
	payload, _ := enc.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), "alice@example.test", "bob@example.test", 1))
	return parts[0] + "." + enc.EncodeToString(payload) + "." + parts[2]
}

func TestBearerEmailVerifiedAndDomains(t *testing.T) {
	op := startOP(t)
	p := op.provider()
	p.Domains = []string{"example.test"}
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{p}})
	for _, tc := range []struct {
		name string
		edit func(jwt.MapClaims)
		want int
	}{
		{"email_verified missing", func(c jwt.MapClaims) { delete(c, "email_verified") }, 401},
		{`email_verified "false"`, func(c jwt.MapClaims) { c["email_verified"] = "false" }, 401},
		{`email_verified "true"`, func(c jwt.MapClaims) { c["email_verified"] = "true" }, 200},
		{"user of a domain the provider may not assert", func(c jwt.MapClaims) { c["email"] = "dan@other.test" }, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := bearerStatus(t, s, op.sign(t, op.kp, tc.edit)); code != tc.want {
				t.Fatalf("%d, want %d", code, tc.want)
			}
		})
	}
}

func TestUnknownKeyIDsDoNotForceFetches(t *testing.T) {
	op := startOP(t)
	s := startSIPServer(t, Config{OIDC: []OIDCProvider{op.provider()}})
	if code := bearerStatus(t, s, op.sign(t, op.kp, nil)); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	before := op.jwksFetches.Load()
	stranger := newKeypair(t)
	for range 30 {
		if code := bearerStatus(t, s, op.sign(t, stranger, nil)); code != 401 {
			t.Fatalf("token with an unknown key: %d", code)
		}
	}
	if n := op.jwksFetches.Load() - before; n > 6 {
		t.Fatalf("30 tokens with an unknown key ID made %d JWKS fetches; want them rate-limited", n)
	}
	// Tokens with the known key are still served at once.
	if code := bearerStatus(t, s, op.sign(t, op.kp, nil)); code != 200 {
		t.Fatalf("valid token after the flood: %d", code)
	}
}
