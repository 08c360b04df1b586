package main

// Federation partners the service admin adds and removes through the
// admin API while the server runs, besides the config's: kept in the
// store (shared by a pool's front ends), followed at once by the Access
// Edge (where the partner's edge is, which CA vouches for its domain)
// and by the federation policy (an added partner is allowed, a removed
// one blocked).

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/parleyuc/parley/edge"
)

// partnerSet is every partner the edge federates with: the config's,
// fixed while the server runs, and the admin's, kept in store. Apply
// follows each change (the edge's partners, its TLS roots).
type partnerSet struct {
	ownCA      *x509.Certificate
	configured []partner
	store      edge.PartnerStore
	logger     *slog.Logger

	mu     sync.Mutex // one change at a time
	stored []partner  // the admin's, as last read from the store
	now    *partners  // what the edge was last given
	apply  func(*partners) error
}

// openPartners reads the config's partners and the admin's from store.
func openPartners(ctx context.Context, f federationConfig, ownCA *x509.Certificate, store edge.PartnerStore, logger *slog.Logger) (*partnerSet, error) {
	configured, err := f.configured()
	if err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	s := &partnerSet{ownCA: ownCA, configured: configured, store: store, logger: logger}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// current is what the edge needs of the partners now.
func (s *partnerSet) current() *partners {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// follow has apply follow every later change (the edge exists now).
func (s *partnerSet) follow(apply func(*partners) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply = apply
}

// reload reads the admin's partners from the store again (after a
// change here, or on another front end of the pool) and has the edge
// follow them. A stored partner whose CA cannot be read is left out,
// logged: the others still federate.
func (s *partnerSet) reload(ctx context.Context) error {
	s.mu.Lock() // held while reading: a later read is never overtaken by an earlier one
	defer s.mu.Unlock()
	list, err := s.store.LoadPartners(ctx)
	if err != nil {
		return fmt.Errorf("federation partners: %w", err)
	}
	var stored []partner
	for _, fp := range list {
		p := partner{domain: strings.ToLower(fp.Domain), edge: fp.Edge}
		if fp.CA != "" {
			if p.cas, err = parseCAs([]byte(fp.CA)); err != nil {
				s.logger.Error("federation: a stored partner's CA is unreadable; partner left out", "partner", fp.Domain, "err", err)
				continue
			}
		}
		stored = append(stored, p)
	}
	now, err := partnersOf(s.ownCA, append(slices.Clone(s.configured), stored...))
	if err != nil {
		return err
	}
	if s.apply != nil {
		if err := s.apply(now); err != nil {
			return err
		}
	}
	s.stored, s.now = stored, now
	return nil
}

// find returns the partner of domain, if any.
func (s *partnerSet) find(domain string) (partner, bool) {
	for _, p := range s.list() {
		if p.domain == domain {
			return p, true
		}
	}
	return partner{}, false
}

// list returns every partner, the config's first.
func (s *partnerSet) list() []partner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(slices.Clone(s.configured), s.stored...)
}

// partnerJSON is a partner as the admin API shows it.
type partnerJSON struct {
	Domain string `json:"domain"`
	// Edge is its Access Edge; empty: found in DNS.
	Edge string `json:"edge,omitempty"`
	// CA are the subjects of the CA certificates its certificates must
	// chain to; none: the system's roots.
	CA []string `json:"ca"`
	// Source is "config" (the config file's, changed there) or "admin"
	// (added through the admin API).
	Source string `json:"source"`
}

func toPartnerJSON(p partner) partnerJSON {
	out := partnerJSON{Domain: p.domain, Edge: p.edge, CA: []string{}, Source: "admin"}
	if p.configured {
		out.Source = "config"
	}
	for _, c := range p.cas {
		out.CA = append(out.CA, c.Subject.String())
	}
	return out
}

func (a *adminAPI) listPartners(w http.ResponseWriter, _ *http.Request) {
	out := []partnerJSON{}
	for _, p := range a.partners.list() {
		out = append(out, toPartnerJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
}

// maxPartnerBody bounds a new partner's body: a CA bundle in PEM.
const maxPartnerBody = 64 << 10

// addPartner adds a partner: checked as the config's partners are,
// stored, allowed by the federation policy, and reachable through the
// edge (its CA trusted for its domain) from the next request on, here
// and on every front end of the pool.
func (a *adminAPI) addPartner(w http.ResponseWriter, r *http.Request) {
	var in edge.FederationPartner
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPartnerBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		jsonError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	domain, err := checkPartner(in.Domain, in.Edge)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	if in.CA != "" {
		if _, err := parseCAs([]byte(in.CA)); err != nil {
			jsonError(w, http.StatusBadRequest, "ca: want the PEM of the partner's CA certificates: "+err.Error())
			return
		}
	}
	in.Domain = domain
	a.mu.Lock()
	defer a.mu.Unlock()
	tenants, err := tenantDomains(r.Context(), a.directory)
	if !a.stored(w, err) {
		return
	}
	if slices.Contains(tenants, domain) {
		jsonError(w, http.StatusBadRequest, "domain: "+domain+" is one of this server's tenants")
		return
	}
	if p, ok := a.partners.find(domain); ok {
		if p.configured {
			jsonError(w, http.StatusConflict, "partner "+domain+" is in the config file (federation.partners); change it there")
		} else {
			jsonError(w, http.StatusConflict, "partner "+domain+" exists; delete it first to change it")
		}
		return
	}
	if err := a.partners.store.SavePartner(r.Context(), in); !a.stored(w, err) {
		return
	}
	if _, err := a.federation.Apply(r.Context(), edge.FederationChange{Allow: []string{domain}}); err != nil {
		a.logger.Error("admin API: partner not allowed; its record removed again", "partner", domain, "err", err)
		if _, err := a.partners.store.RemovePartner(r.Context(), domain); err != nil {
			a.logger.Error("admin API: partner record not removed", "partner", domain, "err", err)
		}
		jsonError(w, http.StatusServiceUnavailable, "the federation policy could not be stored; nothing changed, try again")
		return
	}
	if err := a.partners.reload(r.Context()); err != nil {
		a.logger.Error("admin API: partners not reloaded after an addition", "partner", domain, "err", err)
	}
	a.announce(r.Context(), changeFederation)
	p, _ := a.partners.find(domain)
	a.logger.Info("admin API: federation partner added", "partner", domain, "edge", in.Edge, "ca", in.CA != "")
	writeJSON(w, http.StatusCreated, toPartnerJSON(p))
}

// deletePartner removes a partner the admin added: blocked at once (its
// users' requests are refused, their presence subscriptions end), its CA
// no longer trusted, here and on every front end of the pool.
func (a *adminAPI) deletePartner(w http.ResponseWriter, r *http.Request) {
	domain := strings.ToLower(r.PathValue("domain"))
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.partners.find(domain)
	switch {
	case !ok:
		jsonError(w, http.StatusNotFound, "no partner "+domain)
		return
	case p.configured:
		jsonError(w, http.StatusConflict, "partner "+domain+" is in the config file (federation.partners); remove it there, or block it (POST /admin/v1/federation)")
		return
	}
	if _, err := a.federation.Apply(r.Context(), edge.FederationChange{Block: []string{domain}}); err != nil {
		a.logger.Error("admin API: partner not blocked", "partner", domain, "err", err)
		jsonError(w, http.StatusServiceUnavailable, "the federation policy could not be stored; nothing changed, try again")
		return
	}
	if _, err := a.partners.store.RemovePartner(r.Context(), domain); err != nil {
		// Blocked already: only the record stays, until the next try.
		a.logger.Error("admin API: partner blocked, but its record not removed", "partner", domain, "err", err)
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, "partner "+domain+" is blocked, but the store could not remove it; try again")
		return
	}
	if err := a.partners.reload(r.Context()); err != nil {
		a.logger.Error("admin API: partners not reloaded after a removal", "partner", domain, "err", err)
	}
	if a.onFederation != nil {
		a.onFederation()
	}
	a.announce(r.Context(), changeFederation)
	a.logger.Info("admin API: federation partner removed and blocked", "partner", domain)
	w.WriteHeader(http.StatusNoContent)
}

// What the pool's admin-changes feed carries: what another front end
// must read again.
const (
	changeTenants    = "tenants"
	changeFederation = "federation"
	// changeMeetings: a meeting was ended (deleted) here; the front end
	// that hosts it ends it (conference.Focus.EndDeleted).
	changeMeetings = "meetings"
)

// announce tells the pool's other front ends that what (changeTenants,
// changeFederation, changeMeetings) changed here.
func (a *adminAPI) announce(ctx context.Context, what string) {
	if a.adminChanges == nil {
		return
	}
	if err := a.adminChanges.Announce(ctx, what); err != nil {
		// They follow at their restart instead.
		a.logger.Error("admin API: the pool was not told of a change", "change", what, "err", err)
	}
}

// followAdminChange follows what another front end's admin changed:
// the tenants (the edge's domains, the certificates), or the federation
// (the policy, the partners, and the subscriptions of partners' users
// no longer allowed), or the meetings (those live here but deleted end).
// "": changes may have been missed; all.
func (a *adminAPI) followAdminChange(ctx context.Context, what string) {
	if (what == "" || what == changeMeetings) && a.focus != nil {
		if n, err := a.focus.EndDeleted(ctx); err != nil {
			a.logger.Error("meetings ended through another front end not all checked", "ended", n, "err", err)
		} else if n > 0 {
			a.logger.Info("meetings ended here after another front end's admin ended them", "ended", n)
		}
	}
	if what == "" || what == changeTenants {
		a.tenantsChanged(ctx)
	}
	if what == "" || what == changeFederation {
		if err := a.federation.Reload(ctx); err != nil {
			a.logger.Error("federation policy not reloaded after another front end's change", "err", err)
		}
		if err := a.tenantPolicies.reload(ctx); err != nil {
			a.logger.Error("tenants' federation policies not reloaded after another front end's change", "err", err)
		}
		if err := a.partners.reload(ctx); err != nil {
			a.logger.Error("federation partners not reloaded after another front end's change", "err", err)
		}
		if a.onFederation != nil {
			a.onFederation()
		}
	}
}
