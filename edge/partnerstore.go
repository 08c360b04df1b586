package edge

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// FederationPartner is a partner organization an admin added while the
// server runs: its SIP domain, its Access Edge (host:port, a name its
// certificate carries; empty: found in DNS, as
// AccessEdgeConfig.DiscoverPartners does) and the PEM of the CA
// certificates its certificates must chain to (empty: the system's
// roots).
type FederationPartner struct {
	Domain string `json:"domain"`
	Edge   string `json:"edge,omitempty"`
	CA     string `json:"ca,omitempty"`
}

// PartnerStore keeps the partners added while the server runs across
// restarts, one record per domain, so that front ends sharing the store
// (store.Redis) add and remove partners without overwriting each
// other's changes. store.Bolt and store.Redis implement it.
type PartnerStore interface {
	// LoadPartners returns the stored partners, sorted by domain.
	LoadPartners(ctx context.Context) ([]FederationPartner, error)
	// SavePartner stores p, replacing a partner of the same domain.
	SavePartner(ctx context.Context, p FederationPartner) error
	// RemovePartner removes the partner of domain, reporting whether
	// there was one.
	RemovePartner(ctx context.Context, domain string) (bool, error)
}

// MemoryPartnerStore is a PartnerStore in memory, for tests and
// throwaway use.
type MemoryPartnerStore struct {
	mu sync.Mutex
	m  map[string]FederationPartner
}

// LoadPartners implements PartnerStore.
func (s *MemoryPartnerStore) LoadPartners(context.Context) ([]FederationPartner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FederationPartner, 0, len(s.m))
	for _, p := range s.m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b FederationPartner) int { return strings.Compare(a.Domain, b.Domain) })
	return out, nil
}

// SavePartner implements PartnerStore.
func (s *MemoryPartnerStore) SavePartner(_ context.Context, p FederationPartner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]FederationPartner{}
	}
	p.Domain = normalize(p.Domain)
	s.m[p.Domain] = p
	return nil
}

// RemovePartner implements PartnerStore.
func (s *MemoryPartnerStore) RemovePartner(_ context.Context, domain string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := normalize(domain)
	_, ok := s.m[d]
	delete(s.m, d)
	return ok, nil
}
