package main

// Tenants: the organizations this server hosts, each with its own SIP
// domain, from the config ("tenants") and the admin API; and what a
// tenant admin may see and change (their own tenant only).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
)

// tenantConfig is one entry of the config's "tenants".
type tenantConfig struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
}

// checkTenant validates a tenant of the config or the admin API, and
// returns it normalized; an error begins with the field at fault.
func checkTenant(t tenantConfig) (auth.Tenant, error) {
	n, err := auth.NormalizeTenant(auth.Tenant{Domain: t.Domain, Name: t.Name})
	if err != nil {
		return n, err // "domain: ..."
	}
	if !strings.Contains(n.Domain, ".") {
		return n, fmt.Errorf("domain: %q is not a DNS domain", t.Domain)
	}
	return n, nil
}

// checkTenants validates the config's "tenants", naming the entry and
// field at fault.
func checkTenants(list []tenantConfig) error {
	seen := map[string]bool{}
	for i, t := range list {
		n, err := checkTenant(t)
		if err == nil && seen[n.Domain] {
			err = fmt.Errorf("domain: %s is listed twice", n.Domain)
		}
		if err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			return fmt.Errorf("field \"tenants[%d].%s\": %s", i, field, msg)
		}
		seen[n.Domain] = true
	}
	return nil
}

// applyTenants makes sure every configured tenant exists in the
// directory, with the configured name. Tenants the config does not list
// are left as they are: the admin API may have made them.
func applyTenants(ctx context.Context, d auth.DirectoryStore, list []tenantConfig) error {
	for _, t := range list {
		old, err := d.Tenant(ctx, t.Domain)
		if err == nil && old.Name == t.Name {
			continue
		}
		if err != nil && !errors.Is(err, auth.ErrUnknownTenant) {
			return fmt.Errorf("tenant %s: %w", t.Domain, err)
		}
		keep := auth.Tenant{Domain: t.Domain, Name: t.Name}
		if old != nil {
			keep = *old
			keep.Name = t.Name
		}
		if err := d.SaveTenant(ctx, keep); err != nil {
			return fmt.Errorf("tenant %s: %w", t.Domain, err)
		}
	}
	return nil
}

// tenantDomains lists the directory's tenant domains, sorted.
func tenantDomains(ctx context.Context, d auth.Directory) ([]string, error) {
	ds, ok := d.(auth.DirectoryStore)
	if !ok {
		return nil, errors.New("the directory cannot list its tenants")
	}
	list, err := ds.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, t := range list {
		out = append(out, t.Domain)
	}
	return out, nil
}

// reissue is a certificate of the built-in CA that names the tenants'
// domains, and how to issue it anew for another list of them.
type reissue struct {
	kp    *pki.KeyPair
	issue func(domains []string) (*pki.KeyPair, error)
}

// followTenants returns what follows a change of the tenants through
// the admin API, here or, through the pool's admin-changes feed, on
// another front end: the edge serves their domains, and the certificates
// name them, from the next request and handshake on.
func followTenants(logger *slog.Logger, ae *edge.AccessEdge, certs ...reissue) func(domains []string) {
	return func(domains []string) {
		if err := ae.SetDomains(domains); err != nil {
			logger.Error("the edge's domains not changed", "err", err)
		}
		for _, c := range certs {
			kp, err := c.issue(domains)
			if err == nil {
				err = c.kp.Set(*kp.Certificate())
			}
			if err != nil {
				logger.Error("certificate not re-issued for the tenants", "subject", c.kp.Certificate().Leaf.Subject.String(), "err", err)
			}
		}
		logger.Info("tenants changed", "domains", domains)
	}
}

// primaryDomain is the realm of challenges that name no tenant (the
// Digest realm a request for another domain is challenged with, the
// relay's realm): the first configured tenant, else the demo tenant if
// it is there, else the first tenant.
func primaryDomain(configured []tenantConfig, domains []string) string {
	switch {
	case len(configured) > 0:
		return strings.ToLower(configured[0].Domain)
	case slices.Contains(domains, demoDomain) || len(domains) == 0:
		return demoDomain
	}
	return domains[0]
}

// adminScope is who an admin API request acts for: the service admin
// (the static token) for every tenant, or a tenant admin (a provider's
// token carrying the admin claim) for their own tenant alone.
type adminScope struct {
	tenant string // "": every tenant
}

type scopeKey struct{}

func withScope(r *http.Request, s adminScope) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), scopeKey{}, s))
}

func scopeOf(r *http.Request) adminScope {
	s, _ := r.Context().Value(scopeKey{}).(adminScope)
	return s
}

// covers reports whether the scope may administer what is in domain.
func (s adminScope) covers(domain string) bool {
	return s.tenant == "" || strings.EqualFold(s.tenant, domain)
}

// domainOf is the host part of an address of record (canonical form).
func domainOf(aor string) string {
	_, host, _ := strings.Cut(aor, "@")
	return host
}

// mayAdminister answers 403 and returns false unless r's admin may
// administer what is in domain; what stays hidden to a tenant admin is
// refused the same way whether it exists or not.
func mayAdminister(w http.ResponseWriter, r *http.Request, what, domain string) bool {
	if s := scopeOf(r); !s.covers(domain) {
		jsonError(w, http.StatusForbidden, what+" is not in your tenant "+s.tenant)
		return false
	}
	return true
}

// serviceOnly lets through the service admin only: what is shared by
// every tenant (the tenants themselves, the federation policy and
// partners, the CA's list of revocations) is not a tenant admin's to
// change.
func serviceOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := scopeOf(r); s.tenant != "" {
			jsonError(w, http.StatusForbidden, "only the service admin may do this; a tenant admin administers "+s.tenant)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tenantJSON is a tenant as the admin API shows and takes it.
type tenantJSON struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
}

func (a *adminAPI) listTenants(w http.ResponseWriter, r *http.Request) {
	list, err := a.directory.ListTenants(r.Context())
	if !a.stored(w, err) {
		return
	}
	out := []tenantJSON{}
	for _, t := range list {
		if scopeOf(r).covers(t.Domain) {
			out = append(out, tenantJSON{Domain: t.Domain, Name: t.Name})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *adminAPI) createTenant(w http.ResponseWriter, r *http.Request) {
	var in tenantJSON
	if !decodeBody(w, r, &in) {
		return
	}
	t, err := checkTenant(tenantConfig(in))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.directory.Tenant(r.Context(), t.Domain); err == nil {
		jsonError(w, http.StatusConflict, "tenant "+t.Domain+" exists")
		return
	}
	if !a.stored(w, a.directory.SaveTenant(r.Context(), t)) {
		return
	}
	a.logger.Info("admin API: tenant created", "tenant", t.Domain)
	a.tenantsChanged(r.Context())
	a.announce(r.Context(), changeTenants)
	writeJSON(w, http.StatusCreated, tenantJSON{Domain: t.Domain, Name: t.Name})
}

func (a *adminAPI) deleteTenant(w http.ResponseWriter, r *http.Request) {
	domain := strings.ToLower(r.PathValue("domain"))
	a.mu.Lock()
	defer a.mu.Unlock()
	switch err := a.directory.RemoveTenant(r.Context(), domain); {
	case errors.Is(err, auth.ErrUnknownTenant):
		jsonError(w, http.StatusNotFound, "no tenant "+domain)
		return
	case errors.Is(err, auth.ErrTenantNotEmpty):
		jsonError(w, http.StatusConflict, "tenant "+domain+" still has users; delete them first")
		return
	case !a.stored(w, err):
		return
	}
	a.logger.Info("admin API: tenant deleted", "tenant", domain)
	a.tenantsChanged(r.Context())
	a.announce(r.Context(), changeTenants)
	w.WriteHeader(http.StatusNoContent)
}

// tenantsChanged tells what follows the list of tenants (the
// certificates that name them, the edge's domains).
func (a *adminAPI) tenantsChanged(ctx context.Context) {
	if a.onTenants == nil {
		return
	}
	domains, err := tenantDomains(ctx, a.directory)
	if err != nil {
		a.logger.Error("admin API: tenants unreadable after a change", "err", err)
		return
	}
	a.onTenants(domains)
}

// visibleUsers keeps the users r's admin may see.
func visibleUsers(r *http.Request, users []auth.User) []auth.User {
	s := scopeOf(r)
	return slices.DeleteFunc(users, func(u auth.User) bool { return !s.covers(u.Tenant) })
}
