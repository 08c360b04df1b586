package auth

import (
	"context"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// MethodPool: a tenant user signed in on another front end of the pool,
// asserted by that front end.
const MethodPool Method = "pool"

// peerOf returns the name of the pool front end whose client certificate
// the attempt's connection presented, or "".
func (a *Authenticator) peerOf(at *attempt) string { return a.trustedName(at, a.cfg.Peers) }

// pooled decides a request another front end of the pool passed on for
// one of its users (a MESSAGE to a device connected here): that front end
// authenticated the user and asserts it in P-Asserted-Identity, which
// must name an enabled user of the directory. The connection carries many
// users, so it gets no security association, and the sending front end
// has throttled the user already.
func (a *Authenticator) pooled(ctx context.Context, at *attempt, peer string) verdict {
	if at.asserted == "" {
		return refuse(403, "Request from a pool front end without an asserted identity")
	}
	var uri sip.Uri
	if _, err := sip.ParseAddressValue(at.asserted, &uri, nil); err != nil || uri.User == "" || uri.Host == "" {
		return refuse(403, "Unusable P-Asserted-Identity")
	}
	id, v := a.userIdentity(ctx, "sip:"+uri.User+"@"+strings.ToLower(uri.Host), MethodPool, at)
	if id == nil {
		return v
	}
	a.cfg.Logger.Debug("request from a pool front end", "peer", peer, "user", id.URI)
	at.conn, at.peerCerts = nil, nil
	return a.permit(ctx, id, id.URI, at)
}
