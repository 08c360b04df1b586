package edge

import (
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/internal/sipx"
)

// inDialog forwards a request within a dialog the edge Record-Routed to
// the other side: from the partner's flow inside, from inside to the
// partner's flow.
func (e *AccessEdge) inDialog(req *sip.Request, tx sip.ServerTransaction, f flow) {
	fromTag, toTag := "", ""
	if h := req.From(); h != nil {
		fromTag, _ = h.Params.Get("tag")
	}
	if h := req.To(); h != nil {
		toTag, _ = h.Params.Get("tag")
	}
	src := req.Source()
	out := req.Clone()
	e.dropOwnRoutes(out)
	decrement(out, req)
	// The partner's requests in the dialog carry the caller's tag in From
	// if the partner called, in To if the tenant's user did.
	partnerSide, insideSide := fromTag == f.callerTag, toTag == f.callerTag
	if f.outbound {
		partnerSide, insideSide = insideSide, partnerSide
	}
	switch {
	case req.CallID() == nil || req.CallID().Value() != f.callID:
		respond(tx, req, 403, "Request from another dialog")
		return
	case src == f.partnerSource && partnerSide && f.kind == userFlow:
		// A remote user's or guest's side, on the connection that started
		// the dialog: its credentials go inside, where they are checked,
		// along the inside's routes the edge hid from the user.
		if e.userConnID(src) != f.partnerCert || toTag == "" {
			// Only the dialog's requests, on the connection that made it.
			respond(tx, req, 403, "Request from outside the dialog's flows")
			return
		}
		if !e.allowUser(req, tx) {
			return
		}
		e.asUser(out, src)
		restoreRoutes(out, f)
		out.SetTransport("TLS")
		out.SetDestination(f.internalSource)
	case src == f.internalSource && insideSide && f.kind == userFlow:
		sipx.RemoveHeaders(out, credentialHeaders...)
		e.hideContact(out, e.userAddress())
		if e.userConnID(f.partnerSource) != f.partnerCert {
			respond(tx, req, 430, "Flow Failed")
			return
		}
		out.SetTransport("TLS")
		out.SetDestination(f.partnerSource)
	case src == f.partnerSource && partnerSide:
		// The partner's side: the same checks as the dialog's first
		// request, and it is still the same partner and the same user.
		cert, sender, ok := e.admitPartner(req, tx)
		if !ok {
			return
		}
		if (f.partnerCert != "" && fingerprint(cert) != f.partnerCert) || sender != f.partnerUser {
			respond(tx, req, 403, "Not the dialog's partner user")
			return
		}
		if !f.outbound {
			sipx.RemoveHeaders(out, "Route") // the internal server is the last hop
		}
		strip(out)
		out.AppendHeader(sip.NewHeader("P-Asserted-Identity", assertion(req.From().DisplayName, sender)))
		out.SetTransport("TLS")
		out.SetDestination(f.internalSource)
	case src == f.internalSource && insideSide:
		if _, domain, _ := strings.Cut(f.partnerUser, "@"); !e.cfg.Federation.Allowed(domain) && !endsDialog(req) {
			// Blocked since the dialog began: the partner hears nothing
			// more but its end.
			respond(tx, req, 403, "Federation with this domain is blocked")
			return
		}
		strip(out)
		e.hideContact(out, e.cfg.Listener)
		if e.cfg.Connections != nil {
			if _, err := e.cfg.Connections.GetConnection("TLS", f.partnerSource); err != nil {
				respond(tx, req, 430, "Flow Failed")
				return
			}
		}
		out.SetTransport("TLS")
		out.SetDestination(f.partnerSource)
	default:
		respond(tx, req, 403, "Request from outside the dialog's flows")
		return
	}
	if req.IsAck() {
		e.writeAck(out)
		return
	}
	e.relay(req, tx, out, nil)
}

// writeAck sends an ACK on, with the edge's Via alone (RFC 3261 section
// 16.6: an ACK for a 2xx is its own transaction-less request).
func (e *AccessEdge) writeAck(out *sip.Request) {
	hideVias(out)
	if err := e.cfg.Client.WriteRequest(out, sipgo.ClientRequestAddVia); err != nil {
		e.cfg.Logger.Info("ACK not forwarded", "err", err)
	}
}

// hideVias removes the Vias of the request's path so far: the edge
// relays statefully (its own transaction on each side), so the next hop
// needs only the edge's Via, and outsiders do not learn the inside's
// hosts, nor the inside the outsiders'.
func hideVias(out *sip.Request) {
	for out.Via() != nil {
		out.RemoveHeader("Via")
	}
}

// relay sends out and relays its responses to req's transaction; a CANCEL
// of req (canceled closing) is sent on as a CANCEL of out.
func (e *AccessEdge) relay(req *sip.Request, tx sip.ServerTransaction, out *sip.Request, canceled <-chan struct{}) {
	e.relayTo(req, tx, out, relayOptions{canceled: canceled})
}

// relayOptions are relayTo's: the CANCEL signal; the partner domain and
// edge address of a request sent to a partner; and, for a request from
// inside to a user whose Record-Route the edge hid, the full Record-Route
// to give the inside back in the answers.
type relayOptions struct {
	canceled     <-chan struct{}
	domain, addr string
	recordRoute  []sip.Header
}

// relayTo is relay for a request sent to the partner edge of domain at
// addr (resolved; both empty for a request sent inside): the partner
// edge's certificate must name the domain, or its responses are not
// relayed.
func (e *AccessEdge) relayTo(req *sip.Request, tx sip.ServerTransaction, out *sip.Request, o relayOptions) {
	canceled, domain, addr := o.canceled, o.domain, o.addr
	toUser := e.fromUserConn(req) // responses go to a remote user or guest
	from := e.partner(req)
	toPartner := !toUser && domain == "" && from != nil && !e.internal(from) // responses go to a partner
	certified := domain == ""
	timeout := e.cfg.Timeout
	if req.IsInvite() {
		timeout = e.cfg.InviteTimeout
	}
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	hideVias(out)
	btx, err := e.cfg.Client.TransactionRequest(ctx, out, sipgo.ClientRequestAddVia)
	if err != nil {
		respond(tx, req, 503, "Service Unavailable")
		return
	}
	defer btx.Terminate()
	for {
		select {
		case r, ok := <-btx.Responses():
			if !ok {
				respond(tx, req, 408, "Request Timeout")
				return
			}
			if r.StatusCode == 100 {
				continue
			}
			if !certified { // once per transaction: the connection is the same
				if chain := e.dialedChain(addr); !names(leaf(chain), domain) || !e.issuedFor(chain, domain) {
					e.cfg.Logger.Warn("partner edge's certificate does not name its domain or is not from its CA", "domain", domain, "edge", addr)
					respond(tx, req, 502, "Partner edge not certified for its domain")
					return
				}
				certified = true
			}
			res := r.Clone()
			for res.Via() != nil {
				res.RemoveHeader("Via")
			}
			sip.CopyHeaders("Via", req, res) // the path the request came by, as it came
			switch {
			case toUser && req.Method == sip.REGISTER:
				// The registrar lists all the user's bindings: the device
				// sees only its own (the others may be inside).
				sipx.RemoveHeaders(res, assertionHeaders...)
				ownContacts(res, req)
			case toUser: // a user answers challenges from inside
				sipx.RemoveHeaders(res, assertionHeaders...)
				e.hideContact(res, e.userAddress())
				e.hideRecordRoute(res)
			case o.recordRoute != nil: // the inside gets its route back
				strip(res)
				sipx.RemoveHeaders(res, "Record-Route")
				for _, h := range o.recordRoute {
					res.AppendHeader(sip.HeaderClone(h))
				}
			case toPartner:
				strip(res)
				e.hideContact(res, e.cfg.Listener)
			default:
				strip(res)
			}
			_ = tx.Respond(res)
			if r.StatusCode >= 200 {
				return
			}
		case <-canceled:
			canceled = nil
			e.cancel(out)
		case <-btx.Done():
			respond(tx, req, 408, "Request Timeout")
			return
		case <-ctx.Done():
			if e.ctx.Err() != nil { // Close
				respond(tx, req, 503, "Service Unavailable")
				return
			}
			respond(tx, req, 408, "Request Timeout")
			return
		}
	}
}

// hideContact replaces the host and port of m's Contact with the edge's
// own address edgeAddr, so outsiders do not see internal addresses; the user part and
// parameters stay (the focus knows a meeting by its user part), and the
// edge's Record-Route keeps the dialog's requests coming through it.
func (e *AccessEdge) hideContact(m interface {
	GetHeader(string) sip.Header
	ReplaceHeader(sip.Header)
}, edgeAddr string) {
	h := m.GetHeader("Contact")
	if h == nil {
		return
	}
	c, ok := h.(*sip.ContactHeader)
	if !ok {
		return
	}
	host, port, err := net.SplitHostPort(edgeAddr)
	if err != nil {
		return
	}
	n := c.Clone()
	n.Address.Host = host
	n.Address.Port, _ = strconv.Atoi(port)
	m.ReplaceHeader(n)
}

// ownContacts keeps in res (a REGISTER's answer) only the Contacts that
// req registered.
func ownContacts(res *sip.Response, req *sip.Request) {
	own := map[string]bool{}
	for _, h := range req.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok {
			own[c.Address.Addr()] = true
		}
	}
	var keep []sip.Header
	for _, h := range res.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok && own[c.Address.Addr()] {
			keep = append(keep, sip.HeaderClone(h))
		}
	}
	sipx.RemoveHeaders(res, "Contact")
	for _, h := range keep {
		res.AppendHeader(h)
	}
}

// cancel sends a CANCEL for out, an INVITE the edge forwarded.
func (e *AccessEdge) cancel(out *sip.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	if err := sipx.Cancel(ctx, e.cfg.Client, out); err != nil {
		e.cfg.Logger.Info("CANCEL not sent", "err", err)
	}
}

// endsDialog reports whether req ends its dialog or subscription: a BYE
// (and its ACK), or a NOTIFY whose Subscription-State is terminated.
func endsDialog(req *sip.Request) bool {
	switch req.Method {
	case sip.BYE, sip.ACK, sip.CANCEL:
		return true
	case sip.NOTIFY:
		h := req.GetHeader("Subscription-State")
		return h != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Value())), "terminated")
	}
	return false
}
