package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/parleyuc/parley/auth"
)

// DirectoryStore tests an auth.DirectoryStore; open returns an empty one.
func DirectoryStore(t *testing.T, open func(t *testing.T) auth.DirectoryStore) {
	s := open(t)
	if _, err := s.Tenant(ctx, "example.test"); !errors.Is(err, auth.ErrUnknownTenant) {
		t.Fatalf("a tenant of an empty store: %v, want ErrUnknownTenant", err)
	}
	if _, err := s.User(ctx, "sip:alice@example.test"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("a user of an empty store: %v, want ErrUnknownUser", err)
	}
	alice := auth.User{URI: "sip:alice@Example.Test", DisplayName: "Alice", Enabled: true, MeetingLicense: true,
		Credentials: auth.Credentials{HA1SHA256: "0123"}}
	if err := s.SaveUser(ctx, alice); !errors.Is(err, auth.ErrUnknownTenant) {
		t.Fatalf("a user of a tenant that does not exist: %v, want ErrUnknownTenant", err)
	}
	if err := s.SaveTenant(ctx, auth.Tenant{Domain: "Example.Test", Name: "Example"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTenant(ctx, auth.Tenant{Domain: "bad domain"}); err == nil {
		t.Fatal("a tenant whose domain has a space")
	}
	if tn, err := s.Tenant(ctx, "EXAMPLE.test"); err != nil || tn.Domain != "example.test" || tn.Name != "Example" {
		t.Fatalf("Tenant = %+v, %v", tn, err)
	}
	for _, bad := range []auth.User{
		{URI: "not an address"},
		{URI: "sip:bob@elsewhere.test", Tenant: "example.test"},
		{URI: "sip:" + auth.AnonymousPrefix + "x@example.test"},
	} {
		if err := s.SaveUser(ctx, bad); err == nil {
			t.Fatalf("SaveUser(%q) accepted", bad.URI)
		}
	}
	if err := s.SaveUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for _, aor := range []string{"sip:alice@example.test", "alice@EXAMPLE.TEST", "sips:alice@example.test", `"Alice" <sip:alice@example.test>`} {
		u, err := s.User(ctx, aor)
		if err != nil || u.URI != "sip:alice@example.test" || u.Tenant != "example.test" || u.DisplayName != "Alice" ||
			!u.Enabled || !u.MeetingLicense || u.Credentials.HA1SHA256 != "0123" {
			t.Fatalf("User(%q) = %+v, %v", aor, u, err)
		}
	}
	alice.Enabled = false
	if err := s.SaveUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, "sip:alice@example.test"); u == nil || u.Enabled {
		t.Fatalf("after disabling: %+v", u)
	}
	// Concurrent writers of different users all land.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := s.SaveUser(ctx, auth.User{URI: fmt.Sprintf("sip:u%02d@example.test", i), Enabled: true}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 21 || users[0].URI != "sip:alice@example.test" || users[1].URI != "sip:u00@example.test" ||
		users[20].URI != "sip:u19@example.test" {
		t.Fatalf("ListUsers: %d users, %v", len(users), err)
	}
	if err := s.RemoveUser(ctx, "sip:u05@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "sip:u05@example.test"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("a removed user: %v", err)
	}
	if err := s.RemoveUser(ctx, "sip:u05@example.test"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("removing a user twice: %v, want ErrUnknownUser", err)
	}
	if err := s.SaveTenant(ctx, auth.Tenant{Domain: "acme.test", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	tenants, err := s.ListTenants(ctx)
	if err != nil || len(tenants) != 2 || tenants[0].Domain != "acme.test" || tenants[1].Domain != "example.test" {
		t.Fatalf("ListTenants: %+v, %v", tenants, err)
	}

	// A tenant is removed only once it has no users, and only that one.
	if err := s.SaveUser(ctx, auth.User{URI: "sip:ann@acme.test", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTenant(ctx, "Acme.test"); !errors.Is(err, auth.ErrTenantNotEmpty) {
		t.Fatalf("removing a tenant with a user: %v, want ErrTenantNotEmpty", err)
	}
	if _, err := s.User(ctx, "sip:ann@acme.test"); err != nil {
		t.Fatalf("the user of a tenant whose removal was refused: %v", err)
	}
	if err := s.RemoveUser(ctx, "sip:ann@acme.test"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTenant(ctx, "Acme.test"); err != nil {
		t.Fatalf("removing an empty tenant: %v", err)
	}
	if _, err := s.Tenant(ctx, "acme.test"); !errors.Is(err, auth.ErrUnknownTenant) {
		t.Fatalf("a removed tenant: %v", err)
	}
	if err := s.RemoveTenant(ctx, "acme.test"); !errors.Is(err, auth.ErrUnknownTenant) {
		t.Fatalf("removing a tenant twice: %v, want ErrUnknownTenant", err)
	}
	if err := s.SaveUser(ctx, auth.User{URI: "sip:ann@acme.test", Enabled: true}); !errors.Is(err, auth.ErrUnknownTenant) {
		t.Fatalf("a user for a removed tenant: %v, want ErrUnknownTenant", err)
	}
	if _, err := s.Tenant(ctx, "example.test"); err != nil {
		t.Fatalf("the other tenant after a removal: %v", err)
	}
}
