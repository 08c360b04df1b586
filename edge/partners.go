package edge

// Finding a partner's Access Edge (static, or DNS SRV) and checking that
// its certificate comes from the partner's own CA.

import (
	"context"
	"crypto/x509"
	"errors"
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
	if addr, ok := e.cfg.Partners[domain]; ok {
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
	roots, ok := e.cfg.PartnerCAs[domain]
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
