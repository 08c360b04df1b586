package edge

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SetDomains replaces the tenants' domains the edge serves (see
// AccessEdgeConfig.Domains), as tenants are added or removed: requests
// for a domain no longer listed are refused from the next one on. It
// returns an error naming the entry at fault, and changes nothing then.
func (e *AccessEdge) SetDomains(domains []string) error {
	d, err := normalizeDomains("edge: SetDomains: domains", domains)
	if err != nil {
		return err
	}
	e.domains.Store(&d)
	return nil
}

// Domains returns the tenants' domains the edge serves, normalized.
func (e *AccessEdge) Domains() []string { return slices.Clone(*e.domains.Load()) }

// ours reports whether domain is one of the tenants'.
func (e *AccessEdge) ours(domain string) bool {
	return slices.Contains(*e.domains.Load(), normalize(domain))
}

// normalizeDomains returns a normalized copy of domains (the caller's
// slice is left as it is), or an error naming the entry at fault, after
// field (how the caller names domains).
func normalizeDomains(field string, domains []string) ([]string, error) {
	if len(domains) == 0 {
		return nil, errors.New(field + " is required")
	}
	out := make([]string, len(domains))
	for i, d := range domains {
		if strings.TrimSpace(d) == "" {
			return nil, fmt.Errorf("%s[%d] is empty", field, i)
		}
		out[i] = normalize(d)
	}
	return out, nil
}
