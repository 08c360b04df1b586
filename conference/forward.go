package conference

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// Routing in a pool: a request for a meeting that another front end
// hosts is passed on to that front end by the FocusConfig.Forwarder,
// which stays in the path of the dialogs it makes. The participant stays
// connected to the front end it reached, and the Focus there follows the
// joins it passed on (remoteDialog):
//   - the participant's connection closes: the host is sent the BYE the
//     participant can no longer send, so the roster there is right;
//   - the host goes (its lease lapses, or another front end holds a newer
//     one): the participant is sent a BYE with Reason cause 503, and its
//     client joins again, through this front end, which then hosts the
//     meeting or passes the join on to the new host.

// HostForwarder passes a SIP request for a meeting that another front end
// of the pool hosts to that front end, node (the holder's Lease.Host), and
// relays its answers on tx; *presence.Router implements it. The request
// was authenticated as id, which the forwarder asserts to node; dialIn
// marks a caller a PSTN gateway delivered. It returns the final 2xx it
// relayed, or nil.
type HostForwarder interface {
	ForwardToPeer(req *sip.Request, tx sip.ServerTransaction, id *auth.Identity, node string, dialIn bool) *sip.Response
}

// ReasonHostGone is the Reason text of the BYE a participant whose join
// was passed on gets when the meeting's host went: join again.
const ReasonHostGone = "The meeting's host is gone: join again"

// remoteDialog is a join this front end passed on: the participant's side
// (d, with the host's tag as local tag) and the lease it was passed on
// under.
type remoteDialog struct {
	d      *dialog
	holder Lease
	id     *auth.Identity
	dialIn bool
}

// hostedElsewhere returns the lease of another front end that hosts
// meeting, when requests for it are to be passed on there: a Forwarder is
// set, the meeting is not live here, and the store names another holder.
func (f *Focus) hostedElsewhere(meeting MeetingID) (Lease, bool) {
	if f.cfg.Forwarder == nil {
		return Lease{}, false
	}
	f.mu.Lock()
	c := f.confs[meeting]
	f.mu.Unlock()
	if c != nil {
		return Lease{}, false
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.storeTimeout())
	defer cancel()
	l, err := f.cfg.Leases.Holder(ctx, meeting)
	if err != nil || l.Host == f.cfg.Host {
		return Lease{}, false
	}
	return l, true
}

// forward passes req, authenticated as id, on to holder's front end and,
// for an INVITE it answered 2xx, follows the join.
func (f *Focus) forward(req *sip.Request, tx sip.ServerTransaction, id *auth.Identity, dialIn bool, holder Lease) {
	f.forwards.Add(1)
	res := f.cfg.Forwarder.ForwardToPeer(req, tx, id, holder.Host, dialIn)
	if res == nil || !req.IsInvite() {
		return
	}
	d, ok := f.newDialog(req, holder.Meeting, "", id.URI, false)
	to := res.To()
	if !ok || to == nil {
		return
	}
	d.localTag, _ = to.Params.Get("tag")
	d.contact = ""
	if c := res.Contact(); c != nil {
		d.contact = c.Value()
	}
	d.cseq = 1 << 20 // above any the host may have used towards the participant
	d.confirmed = true
	f.sip.mu.Lock()
	f.sip.remote[d.callID] = &remoteDialog{d: d, holder: holder, id: id, dialIn: dialIn}
	f.sip.mu.Unlock()
}

// passedOn notes a BYE that passes through this front end (either way)
// in a dialog it passed on: the join is over, and needs no following.
func (f *Focus) passedOn(req *sip.Request) {
	if req.Method != sip.BYE || req.CallID() == nil {
		return
	}
	f.sip.mu.Lock()
	delete(f.sip.remote, req.CallID().Value())
	f.sip.mu.Unlock()
}

// leftRemote sends the hosts of the joins passed on over a connection
// that closed the BYE their participants can no longer send.
func (f *Focus) leftRemote(gone []*remoteDialog) {
	for _, r := range gone {
		f.goRun(func() {
			// The participant's side of the dialog, as it would send it:
			// its tag and URI ours, the host's theirs.
			d := *r.d
			d.localTag, d.remoteTag = r.d.remoteTag, r.d.localTag
			d.local, d.remote = r.d.remote, r.d.local
			d.routeSet = nil
			target := r.d.local // the meeting, at its host
			if c := hostContact(r.d.contact); c != nil {
				target = *c
			}
			req := sip.NewRequest(sip.BYE, target)
			inDialogRequest(req, &d, 1<<30)
			req.RemoveHeader("Contact")
			req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=480;text="The participant's connection closed"`))
			auth.AssertIdentity(req, r.id, r.dialIn)
			req.SetTransport("TLS")
			req.SetDestination(r.holder.Host)
			f.sendTo(req, r.holder.Host)
		})
	}
}

// hostContact parses the host's Contact header value.
func hostContact(v string) *sip.Uri {
	if v == "" {
		return nil
	}
	var u sip.Uri
	if _, err := sip.ParseAddressValue(v, &u, nil); err != nil {
		return nil
	}
	u.Headers = nil
	return &u
}

// sendTo sends req and waits for its final response, which it reports
// as accepted or not.
func (f *Focus) sendTo(req *sip.Request, where string) bool {
	if f.cfg.Client == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	defer cancel()
	tx, err := f.cfg.Client.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		f.cfg.Logger.Info("not sent", "method", req.Method, "to", where, "err", err)
		return false
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				return res.StatusCode < 300
			}
		case <-tx.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// hostKeepAlive is how often the connection to a host that joins were
// passed on to carries a request (OPTIONS) when nothing else does: the
// host closes a connection idle for auth.DefaultIdleTimeout, and with it
// would take every participant passed on over it out of its meetings.
const hostKeepAlive = time.Minute

// keepAlive sends each host with joins passed on to it an OPTIONS, on
// behalf of one of their participants, if none was sent in the last
// hostKeepAlive: a request over the connection the joins use.
func (f *Focus) keepAlive(now time.Time) {
	one := map[string]*remoteDialog{}
	f.sip.mu.Lock()
	for _, r := range f.sip.remote {
		if now.Sub(f.sip.pinged[r.holder.Host]) >= hostKeepAlive {
			one[r.holder.Host] = r
		}
	}
	for host := range one {
		f.sip.pinged[host] = now
	}
	for host, at := range f.sip.pinged {
		if now.Sub(at) > 2*hostKeepAlive {
			delete(f.sip.pinged, host)
		}
	}
	f.sip.mu.Unlock()
	for host, r := range one {
		target := hostContact(r.d.contact)
		if target == nil {
			continue
		}
		f.goRun(func() {
			req := sip.NewRequest(sip.OPTIONS, *target)
			fromParams := sip.NewParams()
			fromParams.Add("tag", newTag())
			callID := sip.CallIDHeader(newTag() + newTag())
			req.AppendHeader(&sip.FromHeader{Address: r.d.remote, Params: fromParams})
			req.AppendHeader(&sip.ToHeader{Address: *target})
			req.AppendHeader(&callID)
			req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
			mf := sip.MaxForwardsHeader(70)
			req.AppendHeader(&mf)
			req.SetBody(nil)
			auth.AssertIdentity(req, r.id, r.dialIn)
			req.SetTransport("TLS")
			req.SetDestination(host)
			f.sendTo(req, host)
		})
	}
}

// checkHosts sends a BYE (Reason cause 503) to the participants of the
// joins passed on to a host that is gone: nobody holds the meeting's
// lease, or another front end holds a newer one. A store that cannot be
// read changes nothing: the next check tries again.
func (f *Focus) checkHosts() {
	f.sip.mu.Lock()
	byMeeting := map[MeetingID][]*remoteDialog{}
	for _, r := range f.sip.remote {
		byMeeting[r.holder.Meeting] = append(byMeeting[r.holder.Meeting], r)
	}
	f.sip.mu.Unlock()
	f.keepAlive(f.cfg.Now())
	for meeting, rs := range byMeeting {
		ctx, cancel := context.WithTimeout(f.ctx, f.storeTimeout())
		l, err := f.cfg.Leases.Holder(ctx, meeting)
		cancel()
		if err != nil && !errors.Is(err, ErrNotFound) {
			continue
		}
		for _, r := range rs {
			if err == nil && l.Token == r.holder.Token {
				continue
			}
			f.sip.mu.Lock()
			live := f.sip.remote[r.d.callID] == r
			if live {
				delete(f.sip.remote, r.d.callID)
			}
			f.sip.mu.Unlock()
			if !live {
				continue
			}
			f.cfg.Logger.Info("the meeting's host is gone: the participant is told to join again",
				"meeting", meeting, "host", r.holder.Host, "user", r.d.uri)
			d := r.d
			f.goRun(func() {
				req := sip.NewRequest(sip.BYE, d.target)
				d.routeSet = nil // the participant is reached over its connection
				inDialogRequest(req, d, d.cseq)
				if d.contact == "" {
					req.RemoveHeader("Contact")
				}
				req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=503;text="`+ReasonHostGone+`"`))
				f.send(req, d)
			})
		}
	}
}
