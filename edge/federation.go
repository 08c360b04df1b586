package edge

import (
	"slices"
	"strings"
	"sync"
)

// Federation is the tenant admin's federation policy: which partner
// domains may reach the tenant's users through the Access Edge. Federation
// is open by default (any domain that proves itself with a certificate);
// blocked domains are always refused; closed federation admits only the
// allowed domains. It is safe for concurrent use and changes apply at
// once.
type Federation struct {
	mu      sync.RWMutex
	closed  bool
	allowed map[string]bool
	blocked map[string]bool
}

// FederationPolicy is a Federation's settings, as Policy returns them.
type FederationPolicy struct {
	Open    bool     `json:"open"`
	Allowed []string `json:"allowed"`
	Blocked []string `json:"blocked"`
}

// NewFederation returns an open federation with no domain listed.
func NewFederation() *Federation {
	return &Federation{allowed: map[string]bool{}, blocked: map[string]bool{}}
}

func normalize(domain string) string { return strings.TrimSuffix(strings.ToLower(domain), ".") }

// Allowed reports whether requests from domain may pass.
func (f *Federation) Allowed(domain string) bool {
	d := normalize(domain)
	f.mu.RLock()
	defer f.mu.RUnlock()
	switch {
	case d == "" || f.blocked[d]:
		return false
	case f.closed:
		return f.allowed[d]
	}
	return true
}

// SetOpen opens federation to every domain that is not blocked (true,
// the default) or closes it to all but the allowed domains.
func (f *Federation) SetOpen(open bool) {
	f.mu.Lock()
	f.closed = !open
	f.mu.Unlock()
}

// Allow lists domain as allowed and no longer blocked.
func (f *Federation) Allow(domain string) {
	d := normalize(domain)
	f.mu.Lock()
	f.allowed[d] = true
	delete(f.blocked, d)
	f.mu.Unlock()
}

// Block refuses domain, whatever else is set.
func (f *Federation) Block(domain string) {
	d := normalize(domain)
	f.mu.Lock()
	f.blocked[d] = true
	delete(f.allowed, d)
	f.mu.Unlock()
}

// Forget removes domain from both lists.
func (f *Federation) Forget(domain string) {
	d := normalize(domain)
	f.mu.Lock()
	delete(f.blocked, d)
	delete(f.allowed, d)
	f.mu.Unlock()
}

// Policy returns the current settings, domains sorted.
func (f *Federation) Policy() FederationPolicy {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := FederationPolicy{Open: !f.closed, Allowed: []string{}, Blocked: []string{}}
	for d := range f.allowed {
		p.Allowed = append(p.Allowed, d)
	}
	for d := range f.blocked {
		p.Blocked = append(p.Blocked, d)
	}
	slices.Sort(p.Allowed)
	slices.Sort(p.Blocked)
	return p
}
