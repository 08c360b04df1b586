package edge

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// drainPoll is how often AccessEdge.Shutdown looks whether the requests
// in flight are done.
const drainPoll = 20 * time.Millisecond

// Shutdown drains the edge, as net/http's Server.Shutdown drains a
// server: requests that would start something new (an INVITE, a
// SUBSCRIBE, a MESSAGE outside a dialog) are answered 503 with
// Retry-After, while requests within the dialogs the edge Record-Routed
// (BYE, ACK, re-INVITE, NOTIFY) still pass, so calls and meetings end
// cleanly; it returns once the requests in flight have their final
// answers, or with ctx's error when ctx ends first. The connections stay
// the application's to close with its listeners.
func (e *AccessEdge) Shutdown(ctx context.Context) error {
	e.draining.Store(true)
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for e.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Close stops the edge at once: requests still waiting for their answers
// are answered 503 (their transactions end), and new ones are refused as
// while draining. Call it after Shutdown, or instead of it; the
// connections stay the application's to close with its listeners.
func (e *AccessEdge) Close() error {
	e.draining.Store(true)
	e.stop()
	return nil
}

// refuseWhileDraining answers a request that starts something new while
// the edge drains, and reports whether it did.
func (e *AccessEdge) refuseWhileDraining(req *sip.Request, tx sip.ServerTransaction) bool {
	if !e.draining.Load() {
		return false
	}
	res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
	res.AppendHeader(sip.NewHeader("Retry-After", "30"))
	_ = tx.Respond(res)
	return true
}
