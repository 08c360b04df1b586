package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
// once. With a FederationStore (OpenFederation) every change is stored
// before it applies: a change the store refuses changes nothing.
type Federation struct {
	store FederationStore // nil: in memory only
	wmu   sync.Mutex      // one change at a time, store write included

	mu      sync.RWMutex // the settings requests read
	closed  bool
	allowed map[string]bool
	blocked map[string]bool
}

// FederationStore keeps a Federation's settings across restarts
// (store.Bolt and store.Redis implement it).
type FederationStore interface {
	// LoadFederation returns the stored settings, or false if none were
	// ever stored.
	LoadFederation(ctx context.Context) (FederationPolicy, bool, error)
	// SaveFederation stores the settings, replacing the previous ones.
	SaveFederation(ctx context.Context, p FederationPolicy) error
}

// ErrInvalidDomain is returned for a change naming something that is not
// a DNS domain name.
var ErrInvalidDomain = errors.New("edge: invalid domain")

// FederationPolicy is a Federation's settings, as Policy returns them.
type FederationPolicy struct {
	Open    bool     `json:"open"`
	Allowed []string `json:"allowed"`
	Blocked []string `json:"blocked"`
}

// NewFederation returns an open federation with no domain listed, kept in
// memory.
func NewFederation() *Federation {
	return &Federation{allowed: map[string]bool{}, blocked: map[string]bool{}}
}

// OpenFederation returns the federation stored in store (open, with no
// domain listed, if none is), whose changes are stored there.
func OpenFederation(ctx context.Context, store FederationStore) (*Federation, error) {
	p, ok, err := store.LoadFederation(ctx)
	if err != nil {
		return nil, fmt.Errorf("edge: loading the federation policy: %w", err)
	}
	f := NewFederation()
	f.store = store
	if ok {
		f.closed = !p.Open
		for _, d := range p.Allowed {
			f.allowed[normalize(d)] = true
		}
		for _, d := range p.Blocked {
			f.blocked[normalize(d)] = true
		}
	}
	return f, nil
}

// Reload reads the settings from the store again, replacing the ones in
// memory: another front end sharing the store (store.Redis) changed
// them. Without a store it changes nothing.
func (f *Federation) Reload(ctx context.Context) error {
	if f.store == nil {
		return nil
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	p, ok, err := f.store.LoadFederation(ctx)
	if err != nil {
		return fmt.Errorf("edge: loading the federation policy: %w", err)
	}
	closed, allowed, blocked := false, map[string]bool{}, map[string]bool{}
	if ok {
		closed = !p.Open
		for _, d := range p.Allowed {
			allowed[normalize(d)] = true
		}
		for _, d := range p.Blocked {
			blocked[normalize(d)] = true
		}
	}
	f.mu.Lock()
	f.closed, f.allowed, f.blocked = closed, allowed, blocked
	f.mu.Unlock()
	return nil
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
func (f *Federation) SetOpen(open bool) error {
	_, err := f.Apply(context.Background(), FederationChange{Open: &open})
	return err
}

// Allow lists domain as allowed and no longer blocked.
func (f *Federation) Allow(domain string) error {
	_, err := f.Apply(context.Background(), FederationChange{Allow: []string{domain}})
	return err
}

// Block refuses domain, whatever else is set.
func (f *Federation) Block(domain string) error {
	_, err := f.Apply(context.Background(), FederationChange{Block: []string{domain}})
	return err
}

// Forget removes domain from both lists.
func (f *Federation) Forget(domain string) error {
	_, err := f.Apply(context.Background(), FederationChange{Forget: []string{domain}})
	return err
}

// Apply makes a change, whole or not at all: every domain must be valid
// (ErrInvalidDomain), and with a store the new settings are stored before
// they apply. It returns the settings after the change.
func (f *Federation) Apply(ctx context.Context, c FederationChange) (FederationPolicy, error) {
	for _, list := range [][]string{c.Allow, c.Block, c.Forget} {
		for _, d := range list {
			if !validDomain(d) {
				return FederationPolicy{}, fmt.Errorf("%w: %q", ErrInvalidDomain, d)
			}
		}
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.RLock()
	closed, allowed, blocked := f.closed, maps.Clone(f.allowed), maps.Clone(f.blocked)
	f.mu.RUnlock()
	if c.Open != nil {
		closed = !*c.Open
	}
	for _, d := range c.Allow {
		allowed[normalize(d)] = true
		delete(blocked, normalize(d))
	}
	for _, d := range c.Block {
		blocked[normalize(d)] = true
		delete(allowed, normalize(d))
	}
	for _, d := range c.Forget {
		delete(allowed, normalize(d))
		delete(blocked, normalize(d))
	}
	p := policyOf(closed, allowed, blocked)
	if f.store != nil {
		if err := f.store.SaveFederation(ctx, p); err != nil {
			return f.Policy(), fmt.Errorf("edge: storing the federation policy: %w", err)
		}
	}
	f.mu.Lock()
	f.closed, f.allowed, f.blocked = closed, allowed, blocked
	f.mu.Unlock()
	return p, nil
}

// Policy returns the current settings, domains sorted.
func (f *Federation) Policy() FederationPolicy {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return policyOf(f.closed, f.allowed, f.blocked)
}

func policyOf(closed bool, allowed, blocked map[string]bool) FederationPolicy {
	p := FederationPolicy{Open: !closed, Allowed: slices.Sorted(maps.Keys(allowed)), Blocked: slices.Sorted(maps.Keys(blocked))}
	if p.Allowed == nil {
		p.Allowed = []string{}
	}
	if p.Blocked == nil {
		p.Blocked = []string{}
	}
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
		if _, err := f.Apply(r.Context(), c); errors.Is(err, ErrInvalidDomain) {
			http.Error(w, "federation change: "+err.Error(), http.StatusBadRequest)
			return
		} else if err != nil {
			http.Error(w, "federation change not stored; nothing changed", http.StatusServiceUnavailable)
			return
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

// MemoryFederationStore is a FederationStore in memory, for tests and
// throwaway use.
type MemoryFederationStore struct {
	mu sync.Mutex
	p  *FederationPolicy
}

// LoadFederation implements FederationStore.
func (m *MemoryFederationStore) LoadFederation(context.Context) (FederationPolicy, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return FederationPolicy{}, false, nil
	}
	p := *m.p
	p.Allowed, p.Blocked = slices.Clone(p.Allowed), slices.Clone(p.Blocked)
	return p, true, nil
}

// SaveFederation implements FederationStore.
func (m *MemoryFederationStore) SaveFederation(_ context.Context, p FederationPolicy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.Allowed, p.Blocked = slices.Clone(p.Allowed), slices.Clone(p.Blocked)
	m.p = &p
	return nil
}
