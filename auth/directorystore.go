package auth

import (
	"context"
	"fmt"
	"strings"
)

// DirectoryStore is a Directory that an admin API or a provisioning job
// changes: a tenant or user put or removed here is what the next lookup
// sees. store.Bolt (one server) and store.Redis (a pool, whose front ends
// all see a change at once) keep one; MemoryDirectory is one in memory.
// Implementations validate with NormalizeTenant and NormalizeUser, refuse
// a user whose tenant does not exist (ErrUnknownTenant), and must be safe
// for concurrent use; storetest.DirectoryStore is their conformance
// suite.
type DirectoryStore interface {
	Directory
	// SaveTenant adds or replaces a tenant.
	SaveTenant(ctx context.Context, t Tenant) error
	// SaveUser adds or replaces a user, keyed by the canonical form of
	// its URI.
	SaveUser(ctx context.Context, u User) error
	// RemoveUser removes the user aor, or returns an error wrapping
	// ErrUnknownUser.
	RemoveUser(ctx context.Context, aor string) error
	// RemoveTenant removes the tenant domain, or returns an error
	// wrapping ErrUnknownTenant, or ErrTenantNotEmpty while it has
	// users; the check and the removal are one atomic step.
	RemoveTenant(ctx context.Context, domain string) error
	// ListTenants returns every tenant, sorted by domain.
	ListTenants(ctx context.Context) ([]Tenant, error)
	// ListUsers returns every user, sorted by URI.
	ListUsers(ctx context.Context) ([]User, error)
}

// NormalizeTenant returns t with its domain in lower case, or an error
// naming the field that is not valid.
func NormalizeTenant(t Tenant) (Tenant, error) {
	t.Domain = strings.ToLower(t.Domain)
	if t.Domain == "" || strings.ContainsAny(t.Domain, "@:;/ \t\r\n\"<>") {
		return t, fmt.Errorf("domain: invalid %q", t.Domain)
	}
	return t, nil
}

// NormalizeUser returns u with its URI in canonical form (sip:user@host)
// and its tenant set (the URI's domain) and in lower case, or an error
// naming the field that is not valid: a URI that is not an address of
// record, in another domain than the tenant's, or whose user name is
// reserved for anonymous users.
func NormalizeUser(u User) (User, error) {
	user, host, err := splitAOR(u.URI)
	if err != nil {
		return u, fmt.Errorf("uri: %w", err)
	}
	if strings.HasPrefix(user, AnonymousPrefix) {
		return u, fmt.Errorf("uri: user names starting %q are reserved for anonymous users", AnonymousPrefix)
	}
	u.Tenant = strings.ToLower(u.Tenant)
	if u.Tenant == "" {
		u.Tenant = host
	}
	if host != u.Tenant {
		return u, fmt.Errorf("uri: %s is not in tenant %s", u.URI, u.Tenant)
	}
	u.URI = "sip:" + user + "@" + host
	return u, nil
}

// SaveTenant implements DirectoryStore (PutTenant with a context).
func (d *MemoryDirectory) SaveTenant(_ context.Context, t Tenant) error { return d.PutTenant(t) }

// SaveUser implements DirectoryStore (PutUser with a context).
func (d *MemoryDirectory) SaveUser(_ context.Context, u User) error { return d.PutUser(u) }

// RemoveUser implements DirectoryStore (DeleteUser with a context).
func (d *MemoryDirectory) RemoveUser(_ context.Context, aor string) error { return d.DeleteUser(aor) }

// RemoveTenant implements DirectoryStore (DeleteTenant with a context).
func (d *MemoryDirectory) RemoveTenant(_ context.Context, domain string) error {
	return d.DeleteTenant(domain)
}

// ListUsers implements DirectoryStore.
func (d *MemoryDirectory) ListUsers(context.Context) ([]User, error) { return d.Users(), nil }

// ListTenants implements DirectoryStore.
func (d *MemoryDirectory) ListTenants(context.Context) ([]Tenant, error) {
	d.mu.RLock()
	out := make([]Tenant, 0, len(d.tenants))
	for _, t := range d.tenants {
		out = append(out, t)
	}
	d.mu.RUnlock()
	sortTenants(out)
	return out, nil
}

// Import copies every tenant, then every user, of from into to (a JSON
// directory file read with LoadDirectory, into a store).
func Import(ctx context.Context, to DirectoryStore, from *MemoryDirectory) error {
	tenants, _ := from.ListTenants(ctx)
	for _, t := range tenants {
		if err := to.SaveTenant(ctx, t); err != nil {
			return fmt.Errorf("auth: import tenant %s: %w", t.Domain, err)
		}
	}
	for _, u := range from.Users() {
		if err := to.SaveUser(ctx, u); err != nil {
			return fmt.Errorf("auth: import user %s: %w", u.URI, err)
		}
	}
	return nil
}
