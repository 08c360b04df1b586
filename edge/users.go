package edge

import (
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/sipx"
)

// The edge's service to remote users of the tenants and to anonymous
// meeting guests: they connect to the UserListener over TLS, and their
// requests go inside with their credentials, which the internal server
// checks on each request (auth trusts the edge's connection for nothing
// else). A tenant's user may do what it could do inside; anyone else is
// an anonymous guest who may only join a meeting (AccessEdgeConfig.
// Meetings). A REGISTER gets a Path through the edge, so the user's
// device is reached over its connection to the edge; a dialog gets a
// Record-Route, so its later requests pass through the edge both ways.

// fromUserConn reports whether req came on a connection to the
// UserListener.
func (e *AccessEdge) fromUserConn(req *sip.Request) bool {
	return strings.EqualFold(req.Transport(), "TLS") && e.userConnAlive(req.Source())
}

func (e *AccessEdge) userConnAlive(source string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.users[source] != nil
}

// userConnID returns the random name of the user connection from source,
// or "" if there is none: a flow token names the connection by it, so a
// later connection from the same address and port is another flow.
func (e *AccessEdge) userConnID(source string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.users[source] == nil {
		return ""
	}
	return e.userIDs[source]
}

// asUser prepares a user's request for inside: no assertions (the
// internal server makes its own from the user's credentials), and the
// name of the user's connection (auth.EdgeFlowHeader) as the edge sees
// it, whatever the user wrote.
func (e *AccessEdge) asUser(out *sip.Request, source string) {
	sipx.RemoveHeaders(out, assertionHeaders...)
	sipx.RemoveHeaders(out, auth.EdgeFlowHeader)
	out.AppendHeader(sip.NewHeader(auth.EdgeFlowHeader, e.userConnID(source)))
}

func (e *AccessEdge) userAddress() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.userAddr
}

// allowUser applies the throttle to a user's request by its address and
// subnet, answering 503 if it is over.
func (e *AccessEdge) allowUser(req *sip.Request, tx sip.ServerTransaction) bool {
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		respond(tx, req, 400, "Bad Request")
		return false
	}
	if ok, wait := e.cfg.Throttle.Allow(src.Addr(), ""); !ok {
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", retryAfter(wait)))
		_ = tx.Respond(res)
		return false
	}
	return true
}

// guestMayStart reports whether an anonymous guest may send req outside
// a dialog: a join (INVITE) or the conference state (SUBSCRIBE to the
// conference package).
func guestMayStart(req *sip.Request) bool {
	switch req.Method {
	case sip.INVITE:
		return true
	case sip.SUBSCRIBE:
		ev := req.GetHeader("Event")
		return ev != nil && strings.EqualFold(strings.TrimSpace(strings.Split(ev.Value(), ";")[0]), "conference")
	}
	return false
}

// fromUser forwards a new request of a remote user or guest inside.
func (e *AccessEdge) fromUser(req *sip.Request, tx sip.ServerTransaction) {
	canceled, ok := cancelSignal(req, tx)
	if !ok {
		return
	}
	if !e.allowUser(req, tx) {
		return
	}
	from := req.From()
	if from == nil || from.Address.Host == "" {
		respond(tx, req, 400, "Missing From")
		return
	}
	if !e.ours(req.Recipient.Host) {
		respond(tx, req, 404, "Not a domain of this edge")
		return
	}
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// In a dialog, a user's requests come along the dialog's route
		// through this edge (inDialog), bound to the user's connection.
		respond(tx, req, 403, "In-dialog requests only along the dialog's route")
		return
	}
	user := "sip:" + from.Address.User + "@" + normalize(from.Address.Host)
	if !e.ours(from.Address.Host) {
		// Not one of the tenants' users: an anonymous guest, for a
		// meeting and nothing else.
		if !guestMayStart(req) || e.cfg.Meetings == nil || !e.cfg.Meetings(req.Recipient) {
			respond(tx, req, 403, "Anonymous users may only join meetings")
			return
		}
	}
	out := req.Clone()
	// A user's request is routed from here, and a user agent records no
	// route of its own (a Path or Record-Route it wrote would come before
	// the edge's and take what is meant for it elsewhere).
	sipx.RemoveHeaders(out, "Route", "Path", "Record-Route")
	e.asUser(out, req.Source())
	decrement(out, req)
	connID := e.userConnID(req.Source())
	switch {
	case req.Method == sip.REGISTER:
		f := flow{kind: pathFlow, partnerSource: req.Source(), partnerCert: connID, partnerUser: user, internalSource: e.internalAddr,
			expires: time.Now().Add(maxDialog).Unix()}
		out.PrependHeader(sip.NewHeader("Path", e.recordRoute(e.userAddress(), f)))
	case dialogCreating(req):
		tag, _ := from.Params.Get("tag")
		f := flow{kind: userFlow, partnerSource: req.Source(), partnerCert: connID, partnerUser: user, internalSource: e.internalAddr,
			callID: req.CallID().Value(), callerTag: tag, expires: time.Now().Add(maxDialog).Unix()}
		out.PrependHeader(sip.NewHeader("Record-Route", e.recordRoute(e.userAddress(), f)))
	}
	out.SetTransport("TLS")
	out.SetDestination(e.cfg.Internal)
	e.relay(req, tx, out, canceled)
}

// toUser forwards a request from inside to a remote user's device along
// the Path of its registration, over the device's connection to the edge.
func (e *AccessEdge) toUser(req *sip.Request, tx sip.ServerTransaction, f flow) {
	if req.Method == sip.CANCEL {
		return // it matches its INVITE's transaction
	}
	canceled, ok := cancelSignal(req, tx)
	if !ok {
		return
	}
	if req.Source() != f.internalSource {
		respond(tx, req, 403, "Only the internal server routes to registered users")
		return
	}
	if e.userConnID(f.partnerSource) != f.partnerCert {
		respond(tx, req, 430, "Flow Failed") // RFC 5626: the device has to register again
		return
	}
	out := req.Clone()
	e.dropOwnRoutes(out)
	sipx.RemoveHeaders(out, credentialHeaders...)
	decrement(out, req)
	e.hideContact(out, e.userAddress())
	o := relayOptions{canceled: canceled}
	if dialogCreating(req) {
		tag := ""
		if h := req.From(); h != nil {
			tag, _ = h.Params.Get("tag")
		}
		// The inside's Record-Route stays inside: the user sees the
		// edge's entry, whose token keeps the inside's for the user's
		// later requests, and the answers give the inside its own back.
		d := flow{kind: userFlow, partnerSource: f.partnerSource, partnerCert: f.partnerCert, partnerUser: f.partnerUser, internalSource: f.internalSource,
			callID: req.CallID().Value(), callerTag: tag, outbound: true, expires: time.Now().Add(maxDialog).Unix(),
			routes: routeEntries(req.GetHeaders("Record-Route"))}
		sipx.RemoveHeaders(out, "Record-Route")
		own := sip.NewHeader("Record-Route", e.recordRoute(e.userAddress(), d))
		out.PrependHeader(own)
		o.recordRoute = append([]sip.Header{own}, req.GetHeaders("Record-Route")...)
	}
	out.SetTransport("TLS")
	out.SetDestination(f.partnerSource)
	if req.IsAck() {
		e.writeAck(out)
		return
	}
	e.relayTo(req, tx, out, o)
}

// routeEntries splits Route or Record-Route values into their entries.
func routeEntries(hs []sip.Header) []string {
	var out []string
	for _, h := range hs {
		for _, v := range strings.Split(h.Value(), ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// flowOf returns the user flow a route entry of this edge's carries.
func (e *AccessEdge) flowOf(entry string) (flow, bool) {
	var u sip.Uri
	if sip.ParseUri(strings.Trim(entry, "<>"), &u) != nil {
		return flow{}, false
	}
	f, ok := e.flowIn(u)
	return f, ok && f.kind == userFlow
}

// hideRecordRoute leaves in an answer going to a user only the edge's own
// Record-Route entry, with the inside's entries above it moved into its
// token: the Route the user's later requests need inside (the user's
// route set is the Record-Route reversed), put back by inDialog.
func (e *AccessEdge) hideRecordRoute(res *sip.Response) {
	entries := routeEntries(res.GetHeaders("Record-Route"))
	if len(entries) == 0 {
		return
	}
	sipx.RemoveHeaders(res, "Record-Route")
	for i, entry := range entries {
		f, ok := e.flowOf(entry)
		if !ok {
			continue
		}
		f.routes = nil
		for j := i - 1; j >= 0; j-- {
			f.routes = append(f.routes, entries[j])
		}
		res.AppendHeader(sip.NewHeader("Record-Route", e.recordRoute(e.userAddress(), f)))
		return
	}
}

// restoreRoutes replaces what is left of the Route of a user's request in
// a dialog (the edge's own entries removed) by the inside's entries the
// edge hid from the user.
func restoreRoutes(out *sip.Request, f flow) {
	sipx.RemoveHeaders(out, "Route")
	for i := len(f.routes) - 1; i >= 0; i-- {
		out.PrependHeader(sip.NewHeader("Route", f.routes[i]))
	}
}
