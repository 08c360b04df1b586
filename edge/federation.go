package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// FederationChange is the body of a change to a Federation over HTTP: open
// or close federation, allow, block or forget domains. Absent fields
// change nothing.
type FederationChange struct {
	Open   *bool    `json:"open,omitempty"`
	Allow  []string `json:"allow,omitempty"`
	Block  []string `json:"block,omitempty"`
	Forget []string `json:"forget,omitempty"`
}

// maxFederationChange bounds a change's body.
const maxFederationChange = 64 << 10

// ServeHTTP is the tenant admin's federation API: GET returns the policy
// (FederationPolicy as JSON); POST applies a FederationChange and returns
// the new policy. Changes apply to the next request from a partner. The
// application guards it with its administrators' authentication.
func (f *Federation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var c FederationChange
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFederationChange))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			http.Error(w, "federation change: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, list := range [][]string{c.Allow, c.Block, c.Forget} {
			for _, d := range list {
				if !validDomain(d) {
					http.Error(w, fmt.Sprintf("federation change: invalid domain %q", d), http.StatusBadRequest)
					return
				}
			}
		}
		if c.Open != nil {
			f.SetOpen(*c.Open)
		}
		for _, d := range c.Allow {
			f.Allow(d)
		}
		for _, d := range c.Block {
			f.Block(d)
		}
		for _, d := range c.Forget {
			f.Forget(d)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(f.Policy())
}

// validDomain accepts DNS names: labels of letters, digits and hyphens.
func validDomain(d string) bool {
	d = normalize(d)
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}
