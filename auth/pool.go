package auth

import (
	"context"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// MethodPool: a user signed in on another front end of the pool,
// asserted by that front end.
const MethodPool Method = "pool"

// PoolGuestHeader carries, from one front end of a pool to another, what
// an anonymous user's P-Asserted-Identity cannot: the one meeting their
// conference key opens, and ";dial-in" for a caller a PSTN gateway
// delivered. The Authenticator believes it only from a pool front end
// (Config.Peers); a proxy must strip it from what its clients send, as it
// strips P-Asserted-Identity.
const PoolGuestHeader = "P-Parley-Guest"

// PoolFederatedHeader marks, from one front end of a pool to another, an
// asserted identity as a partner domain's user the first front end's
// Access Edge vouched for (Federated). Believed only from a pool front
// end, and only for a domain that is not a tenant's; a proxy must strip
// it from what its clients send.
const PoolFederatedHeader = "P-Parley-Federated"

// AssertIdentity puts id on req, a request this front end passes on to
// another front end of its pool, which believes it (MethodPool) because
// the request comes over mutual TLS with this front end's certificate:
// P-Asserted-Identity with the display name and, for an anonymous user,
// PoolGuestHeader, for a federated one PoolFederatedHeader. It replaces
// any such headers req had; dialIn marks an anonymous caller delivered by
// a gateway.
func AssertIdentity(req *sip.Request, id *Identity, dialIn bool) {
	req.RemoveHeader("P-Asserted-Identity")
	req.RemoveHeader(PoolGuestHeader)
	req.RemoveHeader(PoolFederatedHeader)
	pai := "<" + id.URI + ">"
	if name := quotable(id.DisplayName); name != "" {
		pai = `"` + name + `" ` + pai
	}
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", pai))
	if id.Kind == Anonymous {
		v := id.Meeting
		if dialIn {
			v += ";dial-in"
		}
		req.AppendHeader(sip.NewHeader(PoolGuestHeader, v))
	}
	if id.Kind == Federated {
		req.AppendHeader(sip.NewHeader(PoolFederatedHeader, "1"))
	}
}

// quotable is a display name fit for a quoted-string: no quotes,
// backslashes or control characters.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// PoolDialIn reports whether req, a request a pool front end passed on
// for identity id, carries a gateway's dial-in caller (AssertIdentity with
// dialIn). It is false for any request that id did not get from a pool
// front end.
func PoolDialIn(req *sip.Request, id *Identity) bool {
	if id == nil || id.Method != MethodPool || id.Kind != Anonymous {
		return false
	}
	h := req.GetHeader(PoolGuestHeader)
	if h == nil {
		return false
	}
	_, params, _ := strings.Cut(h.Value(), ";")
	return strings.TrimSpace(params) == "dial-in"
}

// peerOf returns the name of the pool front end whose client certificate
// the attempt's connection presented, or "".
func (a *Authenticator) peerOf(at *attempt) string { return a.trustedName(at, a.cfg.Peers) }

// pooled decides a request another front end of the pool passed on for
// one of its users (a MESSAGE to a device connected here, a request for a
// meeting hosted here): that front end authenticated the user and asserts
// it in P-Asserted-Identity (AssertIdentity), which must name an enabled
// user of the directory, an anonymous user of one meeting
// (PoolGuestHeader) who may do here only what it may do in that meeting,
// or a partner domain's user (PoolFederatedHeader).
// The connection carries many users, so it gets no security association,
// and the sending front end has throttled the user already.
func (a *Authenticator) pooled(ctx context.Context, at *attempt, peer string) verdict {
	if at.asserted == "" {
		return refuse(403, "Request from a pool front end without an asserted identity")
	}
	var uri sip.Uri
	name, err := sip.ParseAddressValue(at.asserted, &uri, nil)
	if err != nil || uri.User == "" || uri.Host == "" {
		return refuse(403, "Unusable P-Asserted-Identity")
	}
	aor := "sip:" + uri.User + "@" + strings.ToLower(uri.Host)
	at.conn, at.peerCerts = nil, nil
	if strings.EqualFold(uri.Host, anonymousDomain) {
		meeting, _, _ := strings.Cut(at.guest, ";")
		meeting = strings.TrimSpace(meeting)
		switch {
		case meeting == "":
			return refuse(403, "Anonymous identity from a pool front end without its meeting")
		case !anonymousMayDo(at.method, at.event) || at.ruriUser != meeting:
			return refuse(403, "anonymous users may only take part in their meeting")
		}
		a.cfg.Logger.Debug("request from a pool front end", "peer", peer, "user", aor, "meeting", meeting)
		return verdict{id: &Identity{URI: aor, DisplayName: quotable(name), Kind: Anonymous, Method: MethodPool, Meeting: meeting}}
	}
	if at.federated {
		// A partner's user, whom that front end's Access Edge vouched for.
		domain := strings.ToLower(uri.Host)
		if a.isTenant(ctx, domain) {
			return refuse(403, "A tenant's user asserted as a partner's")
		}
		a.cfg.Logger.Debug("request from a pool front end", "peer", peer, "user", aor, "kind", Federated)
		return a.permit(ctx, &Identity{URI: aor, DisplayName: quotable(name), Tenant: domain, Kind: Federated, Method: MethodPool}, aor, at)
	}
	id, v := a.userIdentity(ctx, aor, MethodPool, at)
	if id == nil {
		return v
	}
	a.cfg.Logger.Debug("request from a pool front end", "peer", peer, "user", id.URI)
	return a.permit(ctx, id, id.URI, at)
}
