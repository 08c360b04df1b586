package presence

import (
	"context"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// PeerRingTimeout bounds how long an INVITE passed on to another front
// end of the pool (ForwardToPeer) may wait for its answer. A meeting's
// lobby holds an INVITE for as long as the host's lobby allows, so this is
// only a backstop: the host ends the wait.
const PeerRingTimeout = time.Hour

// ForwardToPeer passes req, which this front end authenticated as id, to
// node, another front end of the pool (its pool listener's host:port, as
// in Binding.Node), over mutual TLS with this server's certificate, and
// relays node's answers to tx. Node believes the identity this front end
// asserts (auth.AssertIdentity; dialIn marks a caller a gateway delivered).
// This is how a request for a meeting reaches the front end that hosts
// it, whichever front end the participant is connected to.
//
// An INVITE or SUBSCRIBE that makes a dialog is Record-Routed through this
// front end, so the dialog's later requests come back here in both
// directions (HandleInDialog): the participant's go to node with id
// asserted again, node's go out over the participant's connection. An
// INVITE waits up to PeerRingTimeout for its answer; the caller's CANCEL
// is passed on. ForwardToPeer returns the final 2xx it relayed, or nil.
func (rt *Router) ForwardToPeer(req *sip.Request, tx sip.ServerTransaction, id *auth.Identity, node string, dialIn bool) *sip.Response {
	if !rt.enter(req, tx, false) {
		return nil
	}
	defer rt.leave()
	canceled := make(chan struct{}, 1)
	if req.IsInvite() && !tx.OnCancel(func(*sip.Request) {
		select {
		case canceled <- struct{}{}:
		default:
		}
	}) {
		return nil // canceled already
	}
	b := Binding{Contact: req.Recipient.String(), Transport: "TLS", Source: node, Node: node}
	if req.IsInvite() {
		return rt.proxyInvite(req, tx, id, dialIn, []Binding{b}, canceled, PeerRingTimeout)
	}
	out, ok := rt.preparePeer(req, id, dialIn, b)
	if !ok {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
		return nil
	}
	ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.Timeout)
	defer cancel()
	btx, err := rt.cfg.Client.TransactionRequest(ctx, out, sipgo.ClientRequestAddVia)
	if err != nil {
		rt.cfg.Logger.Info("not passed on to the pool front end", "node", node, "method", req.Method, "err", err)
		res := sip.NewResponseFromRequest(req, 503, "Host Unreachable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		_ = tx.Respond(res)
		return nil
	}
	defer btx.Terminate()
	for {
		select {
		case r, ok := <-btx.Responses():
			if !ok {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
				return nil
			}
			if r.StatusCode < 200 {
				continue
			}
			res := r.Clone()
			res.RemoveHeader("Via")
			stripIdentity(res)
			_ = tx.Respond(res)
			if r.IsSuccess() {
				return r
			}
			return nil
		case <-btx.Done():
			_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
			return nil
		case <-ctx.Done():
			_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
			return nil
		}
	}
}

// preparePeer is prepare for the front end of binding b, with the
// identity asserted as a pool front end reads it and, for a request that
// makes a dialog, this front end's Record-Route carrying it.
func (rt *Router) preparePeer(req *sip.Request, id *auth.Identity, dialIn bool, b Binding) (*sip.Request, bool) {
	out, ok := rt.prepare(req, id, b)
	if !ok {
		return nil, false
	}
	auth.AssertIdentity(out, id, dialIn)
	if req.Method == sip.INVITE || req.Method == sip.SUBSCRIBE || req.Method == sip.REFER {
		caller := callerFlow(req)
		caller.peer = assertionOf(id, dialIn)
		if !rt.addRecordRoutes(out, caller, b) {
			return nil, false
		}
	}
	return out, true
}
