package main

// Each tenant's own federation policy, its tenant admin's, besides the
// service's: a user of tenant X and a partner P reach each other only if
// the service's policy and X's both allow P.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/edge"
)

// tenantPolicies are the tenants' own federation policies, each kept in
// a store of its own (store.Bolt.TenantFederation, store.Redis's),
// opened when first needed. A tenant that never set one lets through
// whatever the service's policy does.
type tenantPolicies struct {
	// store is where tenant's policy is kept. Nil: in memory.
	store func(tenant string) edge.FederationStore

	mu     sync.Mutex
	m      map[string]*edge.Federation
	memory map[string]*edge.MemoryFederationStore
}

// get returns tenant's policy, opening it from the store the first time.
func (p *tenantPolicies) get(ctx context.Context, tenant string) (*edge.Federation, error) {
	tenant = strings.ToLower(tenant)
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.m[tenant]; ok {
		return f, nil
	}
	var st edge.FederationStore
	if p.store != nil {
		st = p.store(tenant)
	} else {
		if p.memory == nil {
			p.memory = map[string]*edge.MemoryFederationStore{}
		}
		if p.memory[tenant] == nil {
			p.memory[tenant] = &edge.MemoryFederationStore{}
		}
		st = p.memory[tenant]
	}
	f, err := edge.OpenFederation(ctx, st)
	if err != nil {
		return nil, err
	}
	if p.m == nil {
		p.m = map[string]*edge.Federation{}
	}
	p.m[tenant] = f
	return f, nil
}

// allows reports whether tenant's own policy lets it federate with
// partner (edge.AccessEdgeConfig.TenantAllows). A policy that cannot be
// read refuses: the tenant admin may have blocked partner.
func (p *tenantPolicies) allows(tenant, partner string) bool {
	f, err := p.get(context.Background(), tenant)
	return err == nil && f.Allowed(partner)
}

// loaded is allows for the policies already open, the others letting
// everything through: quick, for a check under another lock
// (PresenceServer.EndSubscriptionsTo) once every tenant's is open.
func (p *tenantPolicies) loaded(tenant, partner string) bool {
	p.mu.Lock()
	f, ok := p.m[strings.ToLower(tenant)]
	p.mu.Unlock()
	return !ok || f.Allowed(partner)
}

// reload reads the open policies from their stores again: another front
// end of the pool changed one.
func (p *tenantPolicies) reload(ctx context.Context) error {
	p.mu.Lock()
	open := make([]*edge.Federation, 0, len(p.m))
	for _, f := range p.m {
		open = append(open, f)
	}
	p.mu.Unlock()
	var errs []error
	for _, f := range open {
		errs = append(errs, f.Reload(ctx))
	}
	return errors.Join(errs...)
}

// tenantFederation is a tenant's own federation policy's admin API
// (edge.Federation's, GET and POST), for the service admin and that
// tenant's admin; a change is followed at once here and on the pool's
// other front ends.
func (a *adminAPI) tenantFederation(w http.ResponseWriter, r *http.Request) {
	domain := strings.ToLower(r.PathValue("domain"))
	if !mayAdminister(w, r, "tenant "+domain, domain) {
		return
	}
	if _, err := a.directory.Tenant(r.Context(), domain); errors.Is(err, auth.ErrUnknownTenant) {
		jsonError(w, http.StatusNotFound, "no tenant "+domain)
		return
	} else if !a.stored(w, err) {
		return
	}
	f, err := a.tenantPolicies.get(r.Context(), domain)
	if err != nil {
		a.logger.Error("admin API: a tenant's federation policy unreadable", "tenant", domain, "err", err)
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, "the tenant's federation policy cannot be read; try again")
		return
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	f.ServeHTTP(rec, r)
	if r.Method == http.MethodPost && rec.status == http.StatusOK {
		a.logger.Info("admin API: a tenant's federation policy changed", "tenant", domain)
		if a.onFederation != nil {
			a.onFederation()
		}
		a.announce(r.Context(), changeFederation)
	}
}
