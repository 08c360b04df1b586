package auth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/parleyuc/parley/auth"
)

// An application with its own login puts its identity into the request
// context with ContextWithIdentity; a handler written for Parley's HTTP
// middleware (it reads IdentityFromContext) serves it with no
// Authenticator at all.
func TestOwnLoginServesParleyHandlers(t *testing.T) {
	// The shape of Parley's handlers (edge.RelayCredentials.ServeHTTP,
	// the meeting ticket handler): 401 without an identity.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := auth.IdentityFromContext(r.Context())
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, id.URI+" "+id.Kind.String())
	})
	// The application's own login: a session cookie it issued.
	ownLogin := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, err := r.Cookie("session"); err == nil && c.Value == "alice-session" {
				id := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Remote, Method: "app-session"}
				r = r.WithContext(auth.ContextWithIdentity(r.Context(), id))
				id.URI = "sip:mallory@example.test" // the stored identity is a copy
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(ownLogin(handler))
	defer srv.Close()

	get := func(cookie string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/relay/credentials", nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if code, body := get("alice-session"); code != 200 || body != "sip:alice@example.test remote" {
		t.Fatalf("signed in with the app's session: %d %q, want 200 for alice", code, body)
	}
	if code, _ := get("forged"); code != http.StatusUnauthorized {
		t.Fatalf("no session: %d, want 401", code)
	}
}

func TestContextWithNilIdentityHoldsNone(t *testing.T) {
	ctx := auth.ContextWithIdentity(context.Background(), nil)
	if id, ok := auth.IdentityFromContext(ctx); ok || id != nil {
		t.Fatalf("IdentityFromContext = %v, %v after a nil identity; want none", id, ok)
	}
}
