package conference

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// dialog is a SIP dialog between a participant and the focus: the INVITE
// that joined it, or a SUBSCRIBE to the conference state.
type dialog struct {
	id                          string
	meeting                     MeetingID
	pid                         ParticipantID
	uri                         string
	callID, remoteTag, localTag string
	target                      sip.Uri // the participant's Contact
	routeSet                    []string
	transport, source           string
	contact                     string  // the focus's Contact
	local, remote               sip.Uri // the To and From of the request that made the dialog
	subscription                bool
	confirmed                   bool // the INVITE was answered 2xx
	call                        Call // the participant's media, if the focus answered an offer

	// Guarded by sipState.mu.
	cseq         uint32
	sub          *subscriber // a subscription's
	timer        *time.Timer // a subscription's expiry
	expires      time.Time
	timedOut     bool
	unsubscribed bool
	chatLimit    *rate.Limiter // an INVITE dialog's MESSAGE rate
}

type sipState struct {
	mu      sync.Mutex
	dialogs map[string]*dialog
	// remote: the INVITE dialogs of joins passed on to the meetings'
	// hosts (forward.go), by Call-ID.
	remote  map[string]*remoteDialog
	pinged  map[string]time.Time // the hosts of remote, when last sent a keep-alive
	goMu    sync.Mutex
	stopped bool
}

func (s *sipState) init() {
	s.dialogs = map[string]*dialog{}
	s.remote = map[string]*remoteDialog{}
	s.pinged = map[string]time.Time{}
}

// closeAll forgets every dialog and stops subscription timers.
func (s *sipState) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, d := range s.dialogs {
		if d.timer != nil {
			d.timer.Stop()
		}
		delete(s.dialogs, id)
	}
	clear(s.remote)
}

func dialogKey(callID, remoteTag, localTag string) string {
	return callID + "\x00" + remoteTag + "\x00" + localTag
}

// goRun runs fn on a goroutine the Focus owns, unless it is closing.
func (f *Focus) goRun(fn func()) bool {
	f.sip.goMu.Lock()
	defer f.sip.goMu.Unlock()
	if f.sip.stopped {
		return false
	}
	f.wg.Add(1)
	f.busy.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.busy.Add(-1)
		fn()
	}()
	return true
}

// newDialog records the dialog req starts, our side tagged localTag.
func (f *Focus) newDialog(req *sip.Request, meeting MeetingID, pid ParticipantID, uri string, subscription bool) (*dialog, bool) {
	from, callID, contact := req.From(), req.CallID(), req.Contact()
	if from == nil || callID == nil || contact == nil {
		return nil, false
	}
	remoteTag, _ := from.Params.Get("tag")
	if remoteTag == "" {
		return nil, false
	}
	target := *contact.Address.Clone()
	target.Headers = nil
	d := &dialog{meeting: meeting, pid: pid, uri: uri, callID: callID.Value(), remoteTag: remoteTag, localTag: newTag(),
		target: target, transport: strings.ToUpper(req.Transport()), source: req.Source(), subscription: subscription,
		remote: *from.Address.Clone()}
	if to := req.To(); to != nil {
		d.local = *to.Address.Clone()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		d.routeSet = append(d.routeSet, h.Value())
	}
	d.id = dialogKey(d.callID, d.remoteTag, d.localTag)
	d.contact = f.contactFor(meeting, d.transport)
	return d, true
}

// contactFor is the focus's Contact for a meeting: its ID at the listener
// the participant came through, marked isfocus (RFC 4579).
func (f *Focus) contactFor(meeting MeetingID, transport string) string {
	host := f.cfg.Listeners[transport]
	if host == "" {
		return "<sip:" + string(meeting) + "@invalid>;isfocus"
	}
	tp := "tls"
	if transport == "WSS" {
		tp = "wss"
	}
	if h, p, err := net.SplitHostPort(host); err == nil && strings.Contains(h, ":") {
		host = "[" + h + "]:" + p
	}
	return "<sip:" + string(meeting) + "@" + host + ";transport=" + tp + ">;isfocus"
}

// findDialog returns the dialog of an in-dialog request.
func (f *Focus) findDialog(req *sip.Request) *dialog {
	from, to, callID := req.From(), req.To(), req.CallID()
	if from == nil || to == nil || callID == nil {
		return nil
	}
	remoteTag, _ := from.Params.Get("tag")
	localTag, _ := to.Params.Get("tag")
	f.sip.mu.Lock()
	defer f.sip.mu.Unlock()
	return f.sip.dialogs[dialogKey(callID.Value(), remoteTag, localTag)]
}

func (f *Focus) dropDialog(d *dialog) {
	f.sip.mu.Lock()
	if f.sip.dialogs[d.id] == d {
		delete(f.sip.dialogs, d.id)
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	call := d.call
	f.sip.mu.Unlock()
	if call != nil {
		_ = call.Close()
	}
}

// okFor answers req 2xx within dialog d.
func okFor(req *sip.Request, d *dialog, code int, reason string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	to := req.To()
	params := sip.NewParams()
	for _, kv := range to.Params {
		if kv.K != "tag" {
			params.Add(kv.K, kv.V)
		}
	}
	params.Add("tag", d.localTag)
	res.ReplaceHeader(&sip.ToHeader{DisplayName: to.DisplayName, Address: to.Address, Params: params})
	res.AppendHeader(sip.NewHeader("Contact", d.contact))
	return res
}

// inDialog authenticates an in-dialog request and finds its dialog,
// answering it if either fails.
func (f *Focus) inDialog(req *sip.Request, tx sip.ServerTransaction, subscription bool) *dialog {
	id := f.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return nil
	}
	d := f.findDialog(req)
	switch {
	case d == nil || d.subscription != subscription:
		reply(tx, req, 481, "Call/Transaction Does Not Exist")
		return nil
	case !secureTransport(req):
		reply(tx, req, 403, "Meetings need TLS")
		return nil
	case id.URI != d.uri || strings.ToUpper(req.Transport()) != d.transport || req.Source() != d.source:
		// A dialog is bound to who made it and the connection it came on.
		reply(tx, req, 403, "Not your dialog")
		return nil
	}
	return d
}

// send sends req, a request of the focus in dialog d, over the
// participant's connection and reports whether it was accepted.
func (f *Focus) send(req *sip.Request, d *dialog) bool {
	if f.cfg.Client == nil {
		return false
	}
	req.SetTransport(d.transport)
	req.SetDestination(d.source)
	if f.cfg.Connections != nil {
		if _, err := f.cfg.Connections.GetConnection(d.transport, d.source); err != nil {
			return false
		}
	}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	defer cancel()
	tx, err := f.cfg.Client.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		return false
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode < 200 {
				continue
			}
			return res.StatusCode < 300
		case <-tx.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// FlowClosed takes out of their meetings the participants whose
// connection closed, and ends subscriptions on it. Call it from
// auth.Authenticator.OnConnectionClose.
func (f *Focus) FlowClosed(transport, remote string) {
	transport = strings.ToUpper(transport)
	var gone []*dialog
	f.sip.mu.Lock()
	for _, d := range f.sip.dialogs {
		if d.transport == transport && d.source == remote {
			gone = append(gone, d)
		}
	}
	var left []*remoteDialog
	for callID, r := range f.sip.remote {
		if r.d.transport == transport && r.d.source == remote {
			delete(f.sip.remote, callID)
			left = append(left, r)
		}
	}
	f.sip.mu.Unlock()
	f.leftRemote(left)
	for _, d := range gone {
		f.dropDialog(d)
		if d.subscription {
			f.sip.mu.Lock()
			sub := d.sub
			f.sip.mu.Unlock()
			if sub != nil {
				sub.cancel()
			}
			continue
		}
		_ = f.Leave(d.meeting, d.pid)
	}
}

// participantGone ends with a BYE the INVITE dialog of participant pid,
// who left (by the Go API) or was ejected. Dialogs the participant ended
// itself (BYE, closed connection) are already gone; a lobby INVITE not yet
// answered is answered by its handler.
func (f *Focus) participantGone(meeting MeetingID, pid ParticipantID) {
	var d *dialog
	f.sip.mu.Lock()
	for _, x := range f.sip.dialogs {
		if !x.subscription && x.confirmed && x.meeting == meeting && x.pid == pid {
			d = x
			break
		}
	}
	f.sip.mu.Unlock()
	if d != nil {
		f.endDialog(d, "Removed from the meeting")
	}
}

// endDialog forgets INVITE dialog d, closes its media, and sends it a BYE
// saying why, unless it was already gone.
func (f *Focus) endDialog(d *dialog, reason string) {
	f.sip.mu.Lock()
	live := f.sip.dialogs[d.id] == d
	if live {
		delete(f.sip.dialogs, d.id)
		d.cseq++
	}
	call := d.call
	f.sip.mu.Unlock()
	if call != nil {
		_ = call.Close()
	}
	if !live {
		return
	}
	f.goRun(func() {
		req := sip.NewRequest(sip.BYE, d.target)
		inDialogRequest(req, d, d.cseq)
		req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=200;text="`+reason+`"`))
		f.send(req, d)
	})
}

// inDialogRequest adds to req, a request of the focus, the headers of
// dialog d (RFC 3261 section 12.2.1.1).
func inDialogRequest(req *sip.Request, d *dialog, cseq uint32) {
	fromParams, toParams := sip.NewParams(), sip.NewParams()
	fromParams.Add("tag", d.localTag)
	toParams.Add("tag", d.remoteTag)
	callID := sip.CallIDHeader(d.callID)
	req.AppendHeader(&sip.FromHeader{Address: d.local, Params: fromParams})
	req.AppendHeader(&sip.ToHeader{Address: d.remote, Params: toParams})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: req.Method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range d.routeSet {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(sip.NewHeader("Contact", d.contact))
	req.SetBody(nil) // Content-Length: 0, which a stream transport needs
}
