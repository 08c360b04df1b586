package presence

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/hmactoken"
	"github.com/parleyuc/parley/internal/sipx"
)

// Call routing: the Router forwards INVITEs to every device of the callee
// and stays in the path of the dialog (Record-Route), because the devices
// are reachable only over their own connections to this server.
//
// The Record-Route URI carries a flow token naming both legs' flows
// (transport and remote address), MACed with a per-Router key, so the
// Router keeps no dialog state and nobody can make it send to a flow of
// their choosing. An in-dialog request that arrives on one leg's flow
// with the token goes out on the other leg's. When the legs use different
// transports (TLS and WSS), the Router records two routes, one per side
// (RFC 5658).

// DefaultRingTimeout bounds how long a call may ring.
const DefaultRingTimeout = 3 * time.Minute

// flowToken is the pair of flows of one dialog, bound to the dialog's
// Call-ID and the caller's tag, so a token seen in one call opens no other.
//
// When the callee's leg goes to another front end of the pool
// (ForwardToPeer), the token also carries the identity this server
// authenticated the caller as, which it asserts to that front end in the
// caller's later requests.
type flowToken struct {
	callerTransport, callerSource string
	calleeTransport, calleeSource string
	callID, callerTag             string
	peer                          peerAssertion
}

// peerAssertion is the caller's identity, asserted to the pool front end
// on the callee's leg; zero for a leg to a device.
type peerAssertion struct{ uri, name, meeting, flags string }

// identity returns the asserted identity, and whether it is a dial-in
// caller's; nil if the callee's leg is not a pool front end.
func (p peerAssertion) identity() (*auth.Identity, bool) {
	if p.uri == "" {
		return nil, false
	}
	id := &auth.Identity{URI: p.uri, DisplayName: p.name, Meeting: p.meeting}
	switch {
	case p.meeting != "":
		id.Kind = auth.Anonymous
	case strings.Contains(p.flags, "f"):
		id.Kind = auth.Federated
	}
	return id, strings.Contains(p.flags, "d")
}

func assertionOf(id *auth.Identity, dialIn bool) peerAssertion {
	p := peerAssertion{uri: id.URI, name: id.DisplayName}
	switch id.Kind {
	case auth.Anonymous:
		p.meeting = id.Meeting
	case auth.Federated:
		p.flags += "f"
	}
	if dialIn {
		p.flags += "d"
	}
	return p
}

func (rt *Router) signToken(f flowToken) string {
	return hmactoken.Sign(rt.key[:], f.callerTransport, f.callerSource, f.calleeTransport, f.calleeSource, f.callID, f.callerTag,
		f.peer.uri, strings.ReplaceAll(f.peer.name, "\x00", ""), f.peer.meeting, f.peer.flags)
}

func (rt *Router) verifyToken(tok string) (flowToken, bool) {
	p, ok := hmactoken.Open(rt.key[:], tok, 10)
	if !ok {
		return flowToken{}, false
	}
	return flowToken{p[0], p[1], p[2], p[3], p[4], p[5], peerAssertion{p[6], p[7], p[8], p[9]}}, true
}

// recordRoute is this server's Record-Route for a transport.
func (rt *Router) recordRoute(transport, token string) (string, bool) {
	addr, ok := rt.cfg.Listeners[transport]
	if !ok {
		return "", false
	}
	tp := "tls"
	if transport == "WSS" {
		tp = "ws"
	}
	return "<sip:" + addr + ";transport=" + tp + ";lr;ft=" + token + ">", true
}

// callerFlow is the first half of a dialog's flow token: the flow a
// dialog-creating request came on, its Call-ID and the caller's tag.
func callerFlow(req *sip.Request) flowToken {
	tag := ""
	if f := req.From(); f != nil {
		tag, _ = f.Params.Get("tag")
	}
	callID := ""
	if c := req.CallID(); c != nil {
		callID = c.Value()
	}
	return flowToken{callerTransport: strings.ToUpper(req.Transport()), callerSource: req.Source(), callID: callID, callerTag: tag}
}

// addRecordRoutes puts this server's Record-Route on out, a dialog-creating
// request from caller to binding b: one route when both legs use the same
// transport, two (callee's side on top) when they differ (RFC 5658).
func (rt *Router) addRecordRoutes(out *sip.Request, caller flowToken, b Binding) bool {
	f := caller
	f.calleeTransport, f.calleeSource = b.Transport, b.Source
	tok := rt.signToken(f)
	var rrs []string
	if r, ok := rt.recordRoute(b.Transport, tok); ok {
		rrs = append(rrs, r)
	}
	if b.Transport != caller.callerTransport {
		if r, ok := rt.recordRoute(caller.callerTransport, tok); ok {
			rrs = append(rrs, r)
		}
	}
	if len(rrs) == 0 {
		rt.cfg.Logger.Error("no listener to Record-Route for this transport: set RouterConfig.Listeners", "transport", b.Transport)
		return false
	}
	for i := len(rrs) - 1; i >= 0; i-- {
		out.PrependHeader(sip.NewHeader("Record-Route", rrs[i]))
	}
	return true
}

// HandleSubscribe routes a SUBSCRIBE for an event package other than
// presence (which the PresenceServer serves; see SubscribeHandler) to the
// user's most recently registered device. A subscription is not forked:
// forked subscriptions multiply dialogs for little gain. The Router
// Record-Routes itself, so the device's NOTIFYs come back through it to
// the subscriber's connection.
func (rt *Router) HandleSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		rt.HandleInDialog(req, tx)
		return
	}
	if !rt.enter(req, tx, false) {
		return
	}
	defer rt.leave()
	id := rt.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.Timeout)
	defer cancel()
	bindings, res := rt.targets(ctx, req, id)
	if res != nil {
		_ = tx.Respond(res)
		return
	}
	b := bindings[len(bindings)-1] // the device that registered last
	out, ok := rt.prepare(req, id, b)
	if !ok || !rt.addRecordRoutes(out, callerFlow(req), b) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
		return
	}
	btx, err := rt.cfg.Client.TransactionRequest(ctx, out, sipgo.ClientRequestAddVia)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
		return
	}
	defer btx.Terminate()
	for {
		select {
		case r, ok := <-btx.Responses():
			if !ok {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
				return
			}
			if r.StatusCode < 200 {
				continue
			}
			res := r.Clone()
			res.RemoveHeader("Via")
			stripIdentity(res)
			if r.IsSuccess() {
				res.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+b.AOR+">"))
			}
			_ = tx.Respond(res)
			return
		case <-btx.Done():
			_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
			return
		case <-ctx.Done():
			_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
			return
		}
	}
}

// SubscribeHandler returns the sipgo handler for SUBSCRIBE: the presence
// event goes to presence (the PresenceServer's HandleSubscribe), any other
// to other (the Router's HandleSubscribe).
func SubscribeHandler(presence, other func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if badEvent(req) == nil {
			presence(req, tx)
			return
		}
		other(req, tx)
	}
}

// HandleInvite is the sipgo handler for INVITE: a new call goes to every
// device of the callee (parallel forking, RFC 3261 section 16); ringing is
// relayed; the first device to answer wins and the others are canceled;
// if none answers, the caller gets the best failure. A caller's CANCEL
// cancels every branch. A re-INVITE within a dialog follows the dialog's
// route (HandleInDialog).
func (rt *Router) HandleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		rt.HandleInDialog(req, tx)
		return
	}
	if !rt.enter(req, tx, false) {
		return
	}
	defer rt.leave()
	// Registered first, so a CANCEL that arrives while the caller is
	// authenticated or the callee looked up is not lost.
	canceled := make(chan struct{}, 1)
	if !tx.OnCancel(func(*sip.Request) {
		select {
		case canceled <- struct{}{}:
		default:
		}
	}) {
		return // the transaction has already ended
	}
	id := rt.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	lookup, cancelLookup := context.WithTimeout(rt.ctx, rt.cfg.Timeout)
	bindings, res := rt.targets(lookup, req, id)
	cancelLookup()
	if res != nil {
		_ = tx.Respond(res)
		return
	}
	rt.proxyInvite(req, tx, id, false, bindings, canceled, rt.cfg.RingTimeout)
}

// proxyInvite forks req, authenticated as id, to bindings and relays
// their answers to tx until one answers or all fail, as HandleInvite
// describes; canceled fires on the caller's CANCEL, and ring bounds the
// wait for an answer; dialIn is asserted with id to a pool front end. It
// returns the 2xx relayed, or nil.
func (rt *Router) proxyInvite(req *sip.Request, tx sip.ServerTransaction, id *auth.Identity, dialIn bool, bindings []Binding,
	canceled <-chan struct{}, ring time.Duration) *sip.Response {
	ctx, cancel := context.WithTimeout(rt.ctx, ring)
	defer cancel()
	// Branches get longer: after the ring timeout they are canceled, and a
	// device that ignores the CANCEL is given up 64*T1 later.
	branchCtx, cancelBranches := context.WithTimeout(rt.ctx, ring+64*sip.T1)
	defer cancelBranches()
	caller := callerFlow(req)

	type event struct {
		branch int
		res    *sip.Response // nil: the branch ended with no final response
	}
	events := make(chan event, 16)
	var branches []*sip.Request // the INVITE each branch sent
	var branchAOR []string      // whom each branch reaches, asserted in its responses
	var wg sync.WaitGroup
	for _, b := range bindings {
		var out *sip.Request
		ok := false
		if rt.onPeer(b) {
			out, ok = rt.preparePeer(req, id, dialIn, b) // a meeting's host (ForwardToPeer)
		} else if out, ok = rt.prepare(req, id, b); ok {
			ok = rt.addRecordRoutes(out, caller, b)
		}
		if !ok {
			continue
		}
		btx, err := rt.cfg.Client.TransactionRequest(ctx, out, sipgo.ClientRequestAddVia)
		if err != nil {
			rt.cfg.Logger.Info("call branch failed", "user", b.AOR, "flow", b.Source, "err", err)
			continue
		}
		i := len(branches)
		branches = append(branches, out)
		branchAOR = append(branchAOR, b.AOR)
		wg.Go(func() {
			defer btx.Terminate()
			for {
				select {
				case r, ok := <-btx.Responses():
					if !ok {
						events <- event{branch: i}
						return
					}
					events <- event{branch: i, res: r}
					if r.StatusCode >= 200 {
						return
					}
				case <-btx.Done():
					events <- event{branch: i}
					return
				case <-branchCtx.Done():
					// sipgo 1.7 has no Timer C: a branch that rang and
					// went silent would wait for ever.
					events <- event{branch: i}
					return
				}
			}
		})
	}
	defer func() {
		go func() { wg.Wait(); close(events) }()
		for range events { // let the branch goroutines finish
		}
	}()
	if len(branches) == 0 {
		if len(bindings) == 1 && rt.onPeer(bindings[0]) {
			// A meeting's host that cannot be reached: it may be gone,
			// and its meeting hosted elsewhere once its lease lapses.
			res := sip.NewResponseFromRequest(req, 503, "Host Unreachable", nil)
			res.AppendHeader(sip.NewHeader("Retry-After", "1"))
			_ = tx.Respond(res)
			return nil
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
		return nil
	}

	relay := func(r *sip.Response, aor string) error {
		out := r.Clone()
		out.RemoveHeader("Via") // ours, on top
		stripIdentity(out)
		if aor != "" && r.StatusCode < 300 {
			// The callee's identity as this server knows it (RFC 3325).
			out.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+aor+">"))
		}
		return tx.Respond(out)
	}
	lastProvisional := 0
	// RFC 3261 section 9.1: a branch may be canceled only once it has
	// sent a provisional response; until then the wish is remembered.
	type branchState struct{ provisional, cancelWanted, cancelSent, done bool }
	state := make([]branchState, len(branches))
	cancelBranch := func(j int) {
		st := &state[j]
		if st.done || st.cancelSent {
			return
		}
		if !st.provisional {
			st.cancelWanted = true
			return
		}
		st.cancelSent = true
		b := branches[j]
		wg.Go(func() { rt.cancelBranch(b) })
	}
	cancelOthers := func(except int) {
		for j := range branches {
			if j != except {
				cancelBranch(j)
			}
		}
	}
	pending := len(branches)
	var best, answer *sip.Response
	answered := false
	for pending > 0 {
		select {
		case ev := <-events:
			r := ev.res
			if r == nil || r.StatusCode >= 200 {
				state[ev.branch].done = true
			}
			switch {
			case r == nil:
				pending--
			case r.StatusCode < 200:
				state[ev.branch].provisional = true
				if state[ev.branch].cancelWanted {
					cancelBranch(ev.branch)
				}
				// One ringing per call is enough for the caller (sipgo's
				// WaitAnswer gives up after ten responses); early media
				// (a provisional with a body) always goes through.
				if r.StatusCode > 100 && !answered && (r.StatusCode != lastProvisional || len(r.Body()) > 0) {
					lastProvisional = r.StatusCode
					_ = relay(r, branchAOR[ev.branch])
				}
			case r.IsSuccess():
				pending--
				if !answered {
					answered, answer = true, r
					_ = relay(r, branchAOR[ev.branch])
					cancelOthers(ev.branch)
				} else {
					// RFC 3261 16.7 forwards every 2xx, but sipgo's server
					// transaction has ended with the first: that device is
					// left to time out without an ACK and hang up.
					rt.cfg.Logger.Info("a second answer to one call was not forwarded", "user", branchAOR[ev.branch])
				}
			default:
				pending--
				if best == nil || betterFailure(r.StatusCode, best.StatusCode) {
					best = r
				}
				if r.StatusCode >= 600 {
					cancelOthers(ev.branch) // a global failure ends the search (RFC 3261 16.7)
				}
			}
		case <-canceled:
			cancelOthers(-1) // the callees answer 487, relayed below
		case <-ctx.Done():
			// Nobody answered in time: give up on every branch.
			cancelOthers(-1)
			if !answered && best == nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
				return nil
			}
			pending = 0
		}
	}
	if answered {
		return answer
	}
	if best == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
		return nil
	}
	_ = relay(best, "")
	return nil
}

// cancelBranch sends CANCEL for one forked INVITE (RFC 3261 section 9.1:
// the INVITE's Request-URI, Call-ID, From, To, CSeq number and top Via)
// and waits for its answer. A branch that has already answered finally
// ignores it.
func (rt *Router) cancelBranch(invite *sip.Request) {
	ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.Timeout)
	defer cancel()
	if err := sipx.Cancel(ctx, rt.cfg.Client, invite); err != nil {
		rt.cfg.Logger.Info("CANCEL not sent", "flow", invite.Destination(), "err", err)
	}
}

// HandleInDialog is the sipgo handler for requests within a dialog this
// Router recorded itself in (ACK, BYE, INFO, UPDATE, re-INVITE...): the
// request's Route names this server with a flow token; it goes out over
// the other leg's flow. A request without a valid token, or from neither
// leg's flow, is refused.
func (rt *Router) HandleInDialog(req *sip.Request, tx sip.ServerTransaction) {
	if !rt.enter(req, tx, true) {
		return
	}
	defer rt.leave()
	respond := func(code int, reason string) {
		if !req.IsAck() {
			_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
		}
	}
	var f flowToken
	found := false
	if r := req.Route(); r != nil {
		if tok, ok := r.Address.UriParams.Get("ft"); ok {
			f, found = rt.verifyToken(tok)
		}
	}
	if !found {
		respond(403, "Not a dialog routed by this server")
		return
	}
	fromTag, toTag := "", ""
	if h := req.From(); h != nil {
		fromTag, _ = h.Params.Get("tag")
	}
	if h := req.To(); h != nil {
		toTag, _ = h.Params.Get("tag")
	}
	from := [2]string{strings.ToUpper(req.Transport()), req.Source()}
	var next [2]string
	switch {
	case req.CallID() == nil || req.CallID().Value() != f.callID:
		respond(403, "Request from another dialog")
		return
	case from == [2]string{f.callerTransport, f.callerSource} && fromTag == f.callerTag:
		next = [2]string{f.calleeTransport, f.calleeSource}
	case from == [2]string{f.calleeTransport, f.calleeSource} && toTag == f.callerTag:
		next = [2]string{f.callerTransport, f.callerSource}
	default:
		respond(403, "Request from outside the dialog's flows")
		return
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		respond(483, "Too Many Hops")
		return
	}
	out := req.Clone()
	// Pop this server's routes: the leading Route headers with a token it
	// signed (two for a dialog across transports).
	for {
		r := out.Route()
		if r == nil {
			break
		}
		tok, ok := r.Address.UriParams.Get("ft")
		if !ok {
			break
		}
		if _, ours := rt.verifyToken(tok); !ours {
			break
		}
		out.RemoveHeader("Route")
	}
	// Identities and credentials are not for the other side, except the
	// caller's, asserted to a pool front end on the callee's leg.
	stripIdentity(out)
	if id, dialIn := f.peer.identity(); id != nil && next == [2]string{f.calleeTransport, f.calleeSource} {
		auth.AssertIdentity(out, id, dialIn)
	}
	if mf := req.MaxForwards(); mf != nil {
		dec := sip.MaxForwardsHeader(mf.Val() - 1)
		out.ReplaceHeader(&dec)
	}
	out.SetTransport(next[0])
	out.SetDestination(next[1])
	if !flowAlive(rt.cfg.Connections, next[0], next[1]) {
		respond(430, "Flow Failed")
		return
	}
	if req.IsAck() {
		if err := rt.cfg.Client.WriteRequest(out, sipgo.ClientRequestAddVia); err != nil {
			rt.cfg.Logger.Info("ACK not forwarded", "flow", next[1], "err", err)
		}
		return
	}
	timeout := rt.cfg.Timeout
	if req.IsInvite() {
		timeout = rt.cfg.RingTimeout // a re-INVITE may wait for its user
	}
	ctx, cancel := context.WithTimeout(rt.ctx, timeout)
	defer cancel()
	btx, err := rt.cfg.Client.TransactionRequest(ctx, out, sipgo.ClientRequestAddVia)
	if err != nil {
		respond(480, "Temporarily Unavailable")
		return
	}
	defer btx.Terminate()
	for {
		select {
		case r, ok := <-btx.Responses():
			if !ok {
				respond(408, "Request Timeout")
				return
			}
			if r.StatusCode == 100 {
				continue
			}
			res := r.Clone()
			res.RemoveHeader("Via")
			stripIdentity(res)
			_ = tx.Respond(res)
			if r.StatusCode >= 200 {
				return
			}
		case <-btx.Done():
			respond(408, "Request Timeout")
			return
		case <-ctx.Done():
			respond(408, "Request Timeout")
			return
		}
	}
}
