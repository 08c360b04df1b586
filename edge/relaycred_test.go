package edge

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/pki"
)

func TestRelayCredentialsOverSIP(t *testing.T) {
	s := newSite(t)
	alice := s.peer(s.internal, "sip.example.test", nil)
	alice.user, alice.pass = "alice", "alice-secret"
	ask := func(body string) *sip.Response {
		req := alice.request(MethodService, "sip:example.test", "sip:alice@example.test", "")
		if body != "" {
			req.AppendHeader(sip.NewHeader("Content-Type", RelayRequestType))
			req.SetBody([]byte(body))
		}
		return alice.do(req, 5*time.Second)
	}
	for _, tc := range []struct {
		body string
		ttl  int
	}{{"", 8 * 3600}, {`{"ttl":600}`, 600}, {`{"ttl":86400}`, 8 * 3600}} {
		res := ask(tc.body)
		if res.StatusCode != 200 || res.ContentType() == nil || res.ContentType().Value() != RelayCredentialsType {
			t.Fatalf("SERVICE %q: %v", tc.body, res)
		}
		var c Credential
		if err := json.Unmarshal(res.Body(), &c); err != nil {
			t.Fatal(err)
		}
		if c.TTL != tc.ttl || len(c.URIs) != 1 || !strings.HasSuffix(c.Username, ":sip:alice@example.test") {
			t.Fatalf("SERVICE %q: credential %+v", tc.body, c)
		}
		if pass, user, err := s.secrets.Password(c.Username); err != nil || pass != c.Password || user != "sip:alice@example.test" {
			t.Fatalf("issued credential does not verify: %v", err)
		}
	}
	if res := ask(`{"ttl":-1}`); res.StatusCode != 400 {
		t.Fatalf("negative TTL: %v", res)
	}

	// An anonymous meeting guest gets none.
	m, _ := s.focus.Schedule(context.Background(), &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal},
		conference.MeetingOptions{})
	guest := s.peer(s.internal, "sip.example.test", nil)
	guest.user, guest.pass = auth.AnonymousPrefix+string(m.ID), m.Key
	req := guest.request(MethodService, m.Focus(), "sip:guest@anonymous.invalid", "")
	if res := guest.do(req, 5*time.Second); res.StatusCode != 403 {
		t.Fatalf("anonymous guest: %v", res)
	}
}

// TestRelayCredentialsOverHTTPS: a web client signed in (here with its
// client certificate) gets the same JSON over HTTPS; without signing in,
// 401.
func TestRelayCredentialsOverHTTPS(t *testing.T) {
	s := newSite(t)
	srv := httptest.NewUnstartedServer(s.authn.HTTP(s.relay))
	srv.TLS = pki.ServerTLSConfig(s.pki.Server(t, "sip.example.test"), s.pki.Verifier)
	srv.StartTLS()
	defer srv.Close()
	client := func(cert *pki.KeyPair) *http.Client {
		tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(cert, s.pki.Verifier, "sip.example.test")}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	res, err := client(s.pki.User(t, "sip:alice@example.test")).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var c Credential
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&c) != nil || c.TTL != 8*3600 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET: %s %+v", res.Status, c)
	}
	anon, err := client(nil).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	anon.Body.Close()
	if anon.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without signing in: %s", anon.Status)
	}
}

// an identity whose proof has just expired (bearer token within the
// clock skew) gets an 8-hour relay credential.
func TestRelayCredentialsNotForAnExpiredSignIn(t *testing.T) {
	rc, err := NewRelayCredentials(RelayCredentialsConfig{Secrets: NewSecrets(0, nil), URIs: []string{"turn:x"}, Auth: refuseAll{}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.For(&auth.Identity{URI: "sip:alice@example.test", Kind: auth.Internal, Expires: time.Now().Add(-30 * time.Second)}, 0)
	if !errors.Is(err, ErrSignInExpired) {
		t.Errorf("identity expired 30 s ago: %d s credential, err %v; want ErrSignInExpired", c.TTL, err)
	}
	for name, id := range map[string]*auth.Identity{"no identity": nil, "an anonymous guest": {URI: "sip:guest@example.test", Kind: auth.Anonymous}} {
		if _, err := rc.For(id, 0); !errors.Is(err, ErrNotSignedIn) {
			t.Errorf("%s: err %v, want ErrNotSignedIn", name, err)
		}
	}
}

// TestRelayCredentialsBehindTheApplicationsOwnLogin: an application with
// its own login and no Authenticator serves relay credentials over HTTPS:
// its middleware puts the identity in the context; over SIP, with no Auth
// to check requests, the service answers 500 rather than serve anyone.
func TestRelayCredentialsBehindTheApplicationsOwnLogin(t *testing.T) {
	rc, err := NewRelayCredentials(RelayCredentialsConfig{Secrets: NewSecrets(0, nil), URIs: []string{"turn:relay.example.test:3478"}})
	if err != nil {
		t.Fatalf("NewRelayCredentials without Auth: %v", err)
	}
	ownLogin := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Session") != "kiosk-7" {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			id := &auth.Identity{URI: "sip:kiosk-7@example.test", Tenant: "example.test", Kind: auth.Remote, Method: auth.MethodBearer}
			next.ServeHTTP(w, r.WithContext(auth.ContextWithIdentity(r.Context(), id)))
		})
	}
	srv := httptest.NewTLSServer(ownLogin(rc))
	defer srv.Close()
	get := func(session string) (*http.Response, Credential) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-Session", session)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var c Credential
		_ = json.NewDecoder(res.Body).Decode(&c)
		return res, c
	}
	if res, c := get("kiosk-7"); res.StatusCode != 200 || !strings.HasSuffix(c.Username, ":sip:kiosk-7@example.test") || c.Password == "" {
		t.Errorf("signed in by the application: %s %+v", res.Status, c)
	}
	if res, _ := get("nobody"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("not signed in: %s, want the application's 401", res.Status)
	}

	// Over SIP: nothing to authenticate with, so nothing served.
	ua, _ := sipgo.NewUA()
	defer ua.Close()
	sipSrv, _ := sipgo.NewServer(ua)
	sipSrv.OnRequest(MethodService, rc.HandleService)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = sipSrv.ServeUDP(pc) }()
	defer func() { _ = pc.Close(); <-done }()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("SERVICE sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bK-svc1\r\n" +
		"From: <sip:mallory@example.test>;tag=1\r\nTo: <sip:example.test>\r\nCall-ID: svc1\r\nCSeq: 1 SERVICE\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 500") {
		t.Errorf("SERVICE with no Auth: %q %v, want 500", buf[:n], err)
	}
}
