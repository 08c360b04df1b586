package auth

import (
	"context"
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// MethodFederation: a federated user, verified by its own domain and
// asserted by a trusted Access Edge.
const MethodFederation Method = "federation"

// edgeOf returns the trusted Access Edge whose client certificate the
// attempt's connection presented, or "".
func (a *Authenticator) edgeOf(at *attempt) string { return a.trustedName(at, a.cfg.Edges) }

// trustedName returns the one of names the attempt's client certificate
// carries, if EdgeCA issued it; else "". The names are compared first:
// most certificates carry none of them, and need no signature check.
func (a *Authenticator) trustedName(at *attempt, names []string) string {
	if len(at.peerCerts) == 0 {
		return ""
	}
	for _, name := range at.peerCerts[0].DNSNames {
		if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) }) {
			if at.peerCerts[0].CheckSignatureFrom(a.cfg.EdgeCA) != nil {
				return ""
			}
			return name
		}
	}
	return ""
}

// federated decides a request an Access Edge forwarded for a partner
// (one with P-Asserted-Identity; requests of remote and anonymous users
// come without and authenticate themselves, see check): the edge has
// verified the partner domain (its certificate over mutual TLS) and
// asserts the user in P-Asserted-Identity. An edge asserts only users of
// other domains: the tenants' own users prove themselves here. The
// connection carries many users, so it gets no security association;
// throttling is per federated user and domain.
func (a *Authenticator) federated(ctx context.Context, at *attempt, edge string) verdict {
	if at.asserted == "" {
		return refuse(403, "Request from the Access Edge without an asserted identity")
	}
	var uri sip.Uri
	name, err := sip.ParseAddressValue(at.asserted, &uri, nil)
	if err != nil || uri.User == "" || uri.Host == "" || (!strings.EqualFold(uri.Scheme, "sip") && !strings.EqualFold(uri.Scheme, "sips")) {
		return refuse(403, "Unusable P-Asserted-Identity")
	}
	domain := strings.ToLower(uri.Host)
	if a.isTenant(ctx, domain) {
		return refuse(403, "An Access Edge does not assert the tenant's users")
	}
	aor := "sip:" + uri.User + "@" + domain
	if ok, wait := a.throttle.AllowSender(aor, domain); !ok {
		return verdict{status: 503, reason: "Service Unavailable", retryAfter: wait}
	}
	id := &Identity{URI: aor, DisplayName: name, Tenant: domain, Kind: Federated, Method: MethodFederation}
	a.cfg.Logger.Debug("federated request", "edge", edge, "user", aor)
	return a.permit(ctx, id, aor, at)
}
