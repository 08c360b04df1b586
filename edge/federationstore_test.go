package edge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// brokenFederationStore refuses every write.
type brokenFederationStore struct{ MemoryFederationStore }

func (*brokenFederationStore) SaveFederation(context.Context, FederationPolicy) error {
	return errors.New("disk full")
}

// TestFederationChangeNotStoredChangesNothing: when the store refuses a
// change, the policy in force stays as it was, and the admin API says so
// (503) rather than answering with a policy that would not survive a
// restart.
func TestFederationChangeNotStoredChangesNothing(t *testing.T) {
	f, err := OpenFederation(context.Background(), &brokenFederationStore{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Block("spam.test"); err == nil {
		t.Fatal("a change the store refused reported success")
	}
	if !f.Allowed("spam.test") || len(f.Policy().Blocked) != 0 {
		t.Fatalf("a change the store refused applied: %+v", f.Policy())
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"open":false}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !f.Policy().Open {
		t.Fatalf("admin API with the store refusing: %s, open %v", res.Status, f.Policy().Open)
	}
}

// TestFederationReload: two front ends' federations on one store; what
// one changes, the other decides by once it reloads, and only then.
func TestFederationReload(t *testing.T) {
	s := &MemoryFederationStore{}
	a, err := OpenFederation(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenFederation(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Block("partner.test"); err != nil {
		t.Fatal(err)
	}
	if !b.Allowed("partner.test") {
		t.Fatal("b follows a's change before it reloads")
	}
	if err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b.Allowed("partner.test") {
		t.Fatal("b still lets partner.test through once it reloaded a's block")
	}
	if err := NewFederation().Reload(t.Context()); err != nil {
		t.Fatalf("reloading a federation without a store: %v", err)
	}
}
