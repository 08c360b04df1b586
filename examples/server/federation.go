package main

// Federation with other organizations: the partners of the config, where
// their Access Edges are (a static address, or DNS SRV) and which CA
// vouches for each.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

// federationConfig is the config's "federation".
type federationConfig struct {
	// Partners are the organizations this one federates with.
	Partners []partnerConfig `json:"partners"`
	// DNS is the DNS server (host:port) partners' edges are looked up in;
	// empty: the system's resolver.
	DNS string `json:"dns"`
}

// partnerConfig is one partner: its SIP domain, its Access Edge
// (host:port, a name its certificate carries; empty: found in DNS, the
// _sipfederationtls._tcp SRV record, else the domain on port 5061), and
// the PEM file of the CA its certificates must chain to (empty: the
// system's roots).
type partnerConfig struct {
	Domain string `json:"domain"`
	Edge   string `json:"edge"`
	CA     string `json:"ca"`
}

// check validates "federation", naming the field at fault; tenants are
// this server's own domains, which no partner may claim.
func (f federationConfig) check(tenants []tenantConfig) error {
	if f.DNS != "" {
		if _, _, err := net.SplitHostPort(f.DNS); err != nil {
			return fmt.Errorf("field \"federation.dns\" %q: want host:port of a DNS server: %v", f.DNS, err)
		}
	}
	seen := map[string]bool{}
	for _, t := range tenants {
		seen[strings.ToLower(t.Domain)] = true
	}
	for i, p := range f.Partners {
		field := fmt.Sprintf("federation.partners[%d]", i)
		d, err := checkPartner(p.Domain, p.Edge)
		if err != nil {
			name, msg, _ := strings.Cut(err.Error(), ": ")
			return fmt.Errorf("field %q: %s", field+"."+name, msg)
		}
		if seen[d] {
			return fmt.Errorf("field %q: %s is listed twice, or is one of this server's tenants", field+".domain", d)
		}
		seen[d] = true
		if p.CA != "" {
			if _, err := readCAs(p.CA); err != nil {
				return fmt.Errorf("field %q: %w", field+".ca", err)
			}
		}
	}
	return nil
}

// checkPartner validates a partner's domain and edge, of the config or
// the admin API, and returns the domain normalized; an error begins with
// the field at fault ("domain: ...", "edge: ...").
func checkPartner(domain, edgeAddr string) (string, error) {
	d, err := checkTenant(tenantConfig{Domain: domain})
	if err != nil {
		return "", err // "domain: ..."
	}
	if edgeAddr != "" {
		host, port, err := net.SplitHostPort(edgeAddr)
		if err != nil {
			return "", fmt.Errorf("edge: %q: want host:port: %v", edgeAddr, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("edge: %q: port %q is not a number from 1 to 65535", edgeAddr, port)
		}
		if net.ParseIP(host) != nil {
			return "", fmt.Errorf("edge: %q: want a name the partner's certificate carries, not an IP address (TLS carries no name for an address)", edgeAddr)
		}
	}
	return d.Domain, nil
}

// readCAs reads the CA certificates of a PEM file.
func readCAs(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCAs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// parseCAs parses PEM CA certificates: at least one, each a CA.
func parseCAs(data []byte) ([]*x509.Certificate, error) {
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	for _, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("%s is not a CA certificate", c.Subject)
		}
	}
	return certs, nil
}

// partners is what the Access Edge needs of the partners at one time:
// their edges, their CAs, and the roots its TLS trusts.
type partners struct {
	edges map[string]string
	cas   map[string]*x509.CertPool
	roots *x509.CertPool // this server's CA and every partner's: the edge's TLS trusts them
}

// partner is one partner as the edge uses it: of the config or added by
// the admin.
type partner struct {
	domain, edge string
	cas          []*x509.Certificate // none: the system's roots vouch for it
	configured   bool                // in the config file, which the admin API does not change
}

// configured reads the config's partners and their CA files.
func (f federationConfig) configured() ([]partner, error) {
	var out []partner
	for _, pc := range f.Partners {
		p := partner{domain: strings.ToLower(pc.Domain), edge: pc.Edge, configured: true}
		if pc.CA != "" {
			certs, err := readCAs(pc.CA)
			if err != nil {
				return nil, err
			}
			p.cas = certs
		}
		out = append(out, p)
	}
	return out, nil
}

// resolver is the resolver partners' edges are found with: the
// configured DNS server's, else the system's.
func (f federationConfig) resolver() *net.Resolver {
	if f.DNS == "" {
		return net.DefaultResolver
	}
	server := f.DNS
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// partnersOf is what the edge needs of list; ca is this server's own CA.
func partnersOf(ca *x509.Certificate, list []partner) (*partners, error) {
	p := &partners{edges: map[string]string{}, cas: map[string]*x509.CertPool{}, roots: x509.NewCertPool()}
	for _, pt := range list {
		if len(pt.cas) > 0 {
			continue
		}
		// A partner vouched for by a public CA: the system's roots too.
		system, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("federation: partner %s has no \"ca\" and the system's roots cannot be read: %w", pt.domain, err)
		}
		p.roots = system
		break
	}
	p.roots.AddCert(ca)
	for _, pt := range list {
		if pt.edge != "" {
			p.edges[pt.domain] = pt.edge
		}
		if len(pt.cas) == 0 {
			continue
		}
		pool := x509.NewCertPool()
		for _, c := range pt.cas {
			pool.AddCert(c)
			p.roots.AddCert(c)
		}
		p.cas[pt.domain] = pool
	}
	return p, nil
}

// federationHandler is the federation policy's admin API
// (edge.Federation's), followed by onFederation once a change is made.
func (a *adminAPI) federationHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		a.federation.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && rec.status == http.StatusOK {
			if a.onFederation != nil {
				a.onFederation()
			}
			a.announce(r.Context(), changeFederation)
		}
	})
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// endFederated returns what ends, once the federation policy changes
// (the service's or a tenant's), the presence subscriptions of partners'
// users whose domain is no longer allowed to reach the user they watch:
// each gets a final NOTIFY (terminated;reason=rejected) and sees nothing
// more. domains are the tenants'.
func endFederated(fed *edge.Federation, tenants *tenantPolicies, domains func() []string, ps *presence.PresenceServer, logger *slog.Logger) func() {
	return func() {
		// Every tenant's own policy open first: the check below runs
		// under the presence server's lock, and reads no store.
		for _, d := range domains() {
			if _, err := tenants.get(context.Background(), d); err != nil {
				logger.Error("federation: a tenant's policy unreadable", "tenant", d, "err", err)
			}
		}
		n := ps.EndSubscriptionsTo(func(w *auth.Identity, presentity string) bool {
			if w.Kind != auth.Federated {
				return false
			}
			partner := domainOf(w.URI)
			return !fed.Allowed(partner) || !tenants.loaded(domainOf(presentity), partner)
		})
		if n > 0 {
			logger.Info("federation: subscriptions of partners no longer allowed ended", "subscriptions", n)
		}
	}
}

// allowPartners puts every configured partner on the federation's allow
// list (a closed federation then lets them, and only them, through),
// unless the admin has blocked it or already lists it: the admin's block
// outlives a restart.
func (f federationConfig) allowPartners(fed *edge.Federation) error {
	policy := fed.Policy()
	var add []string
	for _, p := range f.Partners {
		d := strings.ToLower(p.Domain)
		if !slices.Contains(policy.Blocked, d) && !slices.Contains(policy.Allowed, d) {
			add = append(add, d)
		}
	}
	if len(add) == 0 {
		return nil
	}
	_, err := fed.Apply(context.Background(), edge.FederationChange{Allow: add})
	return err
}
