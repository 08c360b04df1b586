package edge

// Finding a partner's Access Edge (static, or DNS SRV) and checking that
// its certificate comes from the partner's own CA.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// errNoPartnerEdge: the domain has no Access Edge this edge can find.
var errNoPartnerEdge = errors.New("edge: no route to the domain")

// partnerEdge returns the address of domain's Access Edge: from
// Partners, else, with DiscoverPartners, from DNS (RFC 3263 as federation
// uses it: the SRV records _sipfederationtls._tcp.<domain>, the best
// first; with none, <domain>:5061 if the domain has an address). A name
// the partner's certificate must carry stays a name, for TLS to verify.
func (e *AccessEdge) partnerEdge(domain string) (string, error) {
	if addr, ok := e.partners.Load().edges[normalize(domain)]; ok {
		return addr, nil
	}
	if !e.cfg.DiscoverPartners {
		return "", errNoPartnerEdge
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, srvs, err := e.cfg.Resolver.LookupSRV(ctx, "sipfederationtls", "tcp", domain)
	if err == nil && len(srvs) > 0 && srvs[0].Target != "." { // sorted by priority, then weight
		return net.JoinHostPort(strings.TrimSuffix(srvs[0].Target, "."), strconv.Itoa(int(srvs[0].Port))), nil
	}
	if !notFound(err) {
		return "", err
	}
	if _, err := e.cfg.Resolver.LookupHost(ctx, domain); err != nil {
		if notFound(err) {
			return "", errNoPartnerEdge
		}
		return "", err
	}
	return net.JoinHostPort(domain, "5061"), nil
}

// notFound reports whether a DNS lookup's error says the name has no
// such records (rather than that DNS could not be asked).
func notFound(err error) bool {
	var de *net.DNSError
	return err == nil || errors.As(err, &de) && de.IsNotFound
}

// issuedFor reports whether chain (a partner's, verified by the TLS
// handshake against every trusted root) chains to domain's own CAs, when
// PartnerCAs names them: one partner's CA cannot vouch for another's
// domain.
func (e *AccessEdge) issuedFor(chain []*x509.Certificate, domain string) bool {
	roots, ok := e.partners.Load().cas[normalize(domain)]
	if !ok {
		return true
	}
	if len(chain) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// partnerRoutes are the configured partners' edges and CAs, by
// normalized domain.
type partnerRoutes struct {
	edges map[string]string
	cas   map[string]*x509.CertPool
}

// partnerRoutesOf checks and normalizes partners' edges and CAs (the
// caller's maps are left as they are); an error names the entry at
// fault, after field.
func partnerRoutesOf(field string, edges map[string]string, cas map[string]*x509.CertPool) (*partnerRoutes, error) {
	r := &partnerRoutes{edges: make(map[string]string, len(edges)), cas: make(map[string]*x509.CertPool, len(cas))}
	for d, pool := range cas {
		if strings.TrimSpace(d) == "" || pool == nil {
			return nil, fmt.Errorf("%sPartnerCAs[%q]: a domain and its CAs are required", field, d)
		}
		r.cas[normalize(d)] = pool
	}
	for d, addr := range edges {
		if strings.TrimSpace(d) == "" || addr == "" {
			return nil, fmt.Errorf("%sPartners[%q] = %q: a domain and an address are required", field, d, addr)
		}
		r.edges[normalize(d)] = addr
	}
	return r, nil
}

// configuredRoutes is partnerRoutesOf for AccessEdgeConfig, whose
// Partners map stays the caller's, looked up as it was given (domains in
// lower case): a caller may fill it in once the edges run, as before
// SetPartners existed.
func configuredRoutes(edges map[string]string, cas map[string]*x509.CertPool) (*partnerRoutes, error) {
	r, err := partnerRoutesOf("edge: AccessEdgeConfig.", edges, cas)
	if err != nil {
		return nil, err
	}
	if edges != nil {
		r.edges = edges
	}
	return r, nil
}

// SetPartners replaces the partners' Access Edges and the CAs bound to
// their domains (see AccessEdgeConfig.Partners and PartnerCAs), as an
// admin adds or removes partners: the next request to a partner, and the
// next certificate a partner presents, follow the new ones. (The TLS
// configuration's roots are the caller's to change, pki.Verifier.SetRoots.)
// It returns an error naming the entry at fault, and changes nothing
// then.
func (e *AccessEdge) SetPartners(edges map[string]string, cas map[string]*x509.CertPool) error {
	r, err := partnerRoutesOf("edge: SetPartners: ", edges, cas)
	if err != nil {
		return err
	}
	e.partners.Store(r)
	return nil
}
