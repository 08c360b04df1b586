package conference

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/auth"
)

// Authenticator authenticates a SIP request, answering it (a challenge, a
// refusal) and returning nil when it does not pass; *auth.Authenticator
// implements it.
type Authenticator interface {
	Authenticate(req *sip.Request, tx sip.ServerTransaction) *auth.Identity
}

// ConnectionTracker is implemented by an Authenticator that keeps track of
// the connections requests arrive on, as *auth.Authenticator does (with
// its Listener). A Focus whose Auth has it registers FlowClosed with it,
// so a participant whose connection closes leaves its meetings; Close
// removes the registration.
type ConnectionTracker interface {
	OnConnectionClose(f func(transport, remote string)) (remove func())
}

// Connections finds a live connection; *sip.TransportLayer implements it.
type Connections interface {
	GetConnection(network, addr string) (sip.Connection, error)
}

const (
	// queuedEvery repeats 182 Queued while a participant waits in the
	// lobby, so proxies on the way (Timer C, RFC 3261 section 16.6) keep
	// the INVITE alive.
	queuedEvery     = 60 * time.Second
	sipTimeout      = 5 * time.Second
	maxSubExpires   = time.Hour
	minSubExpires   = 60 * time.Second
	eventConference = "conference"
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
}

type sipState struct {
	mu      sync.Mutex
	dialogs map[string]*dialog
	goMu    sync.Mutex
	stopped bool
}

func (s *sipState) init() { s.dialogs = map[string]*dialog{} }

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

// Owns reports whether req is for a meeting's focus (its Request-URI's
// user part has the form of a meeting ID) or for a dial-in number.
func (f *Focus) Owns(req *sip.Request) bool {
	return isMeetingID(req.Recipient.User) || f.isDialInNumber(req.Recipient.User)
}

// Dispatch returns a handler that gives requests for a focus (Owns) to
// the Focus and all others to other, for the methods the focus serves
// (INVITE, ACK, BYE, INFO, SUBSCRIBE).
func (f *Focus) Dispatch(other sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if f.Owns(req) {
			f.HandleRequest(req, tx)
			return
		}
		other(req, tx)
	}
}

// HandleRequest serves a request addressed to a focus: INVITE joins the
// meeting (182 Queued while in the lobby, 200 once in), INFO carries
// control requests (ControlType), SUBSCRIBE to the conference event
// package (RFC 4575) gives the conference state, BYE leaves.
//
// A Focus made without FocusConfig.Auth serves no SIP: it answers 500 and
// logs why, rather than serve anyone unauthenticated.
func (f *Focus) HandleRequest(req *sip.Request, tx sip.ServerTransaction) {
	f.busy.Add(1)
	defer f.busy.Add(-1)
	if f.cfg.Auth == nil {
		if req.Method != sip.ACK {
			f.cfg.Logger.Error("a SIP request for the focus, which has no FocusConfig.Auth", "method", req.Method, "source", req.Source())
			reply(tx, req, 500, "Focus Not Configured For SIP")
		}
		return
	}
	switch req.Method {
	case sip.INVITE:
		f.handleInvite(req, tx)
	case sip.ACK:
	case sip.BYE:
		f.handleBye(req, tx)
	case sip.INFO:
		f.handleInfo(req, tx)
	case sip.SUBSCRIBE:
		f.handleSubscribe(req, tx)
	default:
		res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, INFO, SUBSCRIBE"))
		_ = tx.Respond(res)
	}
}

func reply(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// secureTransport reports whether req came over TLS or WSS: the focus's
// NOTIFYs and BYEs go back over that connection, and keys and tokens
// travel only over TLS.
func secureTransport(req *sip.Request) bool {
	t := strings.ToUpper(req.Transport())
	return t == "TLS" || t == "WSS"
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

// joinStatus maps a Join error to a SIP status.
func joinStatus(err error) (int, string) {
	switch {
	case errors.Is(err, ErrNotFound):
		return 404, "No such meeting"
	case errors.Is(err, ErrRefused):
		return 403, "Not admitted to this meeting"
	case errors.Is(err, ErrFull):
		return 486, "Meeting full"
	case errors.Is(err, ErrClosed):
		return 503, "Service Unavailable"
	}
	return 500, "Server Internal Error"
}

func (f *Focus) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// A re-INVITE (a session refresh): the focus dialog carries no
		// media of its own.
		d := f.inDialog(req, tx, false)
		switch {
		case d == nil:
		case len(req.Body()) > 0:
			reply(tx, req, 488, "Not Acceptable Here")
		default:
			_ = tx.Respond(okFor(req, d, 200, "OK"))
		}
		return
	}
	canceled := make(chan struct{})
	var once sync.Once
	if !tx.OnCancel(func(*sip.Request) { once.Do(func() { close(canceled) }) }) {
		return
	}
	id := f.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	if !secureTransport(req) {
		reply(tx, req, 403, "Meetings need TLS")
		return
	}
	if f.isDialInNumber(req.Recipient.User) {
		f.dialIn(req, tx, id)
		return
	}
	if len(req.Body()) > 0 && f.mediaServer() == nil {
		// Media is negotiated with the A/V conferencing server, with the
		// token an add-user request returns.
		res := sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil)
		res.AppendHeader(sip.NewHeader("Warning", `399 parley "join media with an add-user INFO"`))
		_ = tx.Respond(res)
		return
	}
	meeting := MeetingID(req.Recipient.User)
	jr := JoinRequest{Identity: id}
	if f.isGateway(id) {
		// A PSTN gateway delivers a caller who entered this meeting's
		// conference ID: anonymous, known by its caller ID at most.
		jr = JoinRequest{DialIn: true, Identity: dialInIdentity(req, meeting)}
	}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	p, err := f.Join(ctx, meeting, jr)
	cancel()
	if err != nil {
		code, reason := joinStatus(err)
		reply(tx, req, code, reason)
		return
	}
	// The dialog's later requests come from whoever authenticated this
	// INVITE (the gateway, for a dial-in caller), over this connection.
	d, ok := f.newDialog(req, meeting, p.ID, id.URI, false)
	if !ok {
		_ = f.Leave(meeting, p.ID)
		reply(tx, req, 400, "Missing From tag, Call-ID or Contact")
		return
	}
	f.sip.mu.Lock()
	f.sip.dialogs[d.id] = d
	f.sip.mu.Unlock()
	// fail takes the participant out and answers the INVITE.
	fail := func(code int, reason string) {
		f.dropDialog(d)
		_ = f.Leave(meeting, p.ID)
		if code != 0 {
			reply(tx, req, code, reason)
		}
	}

	if p.State == InLobby {
		queued := okFor(req, d, 182, "Queued")
		_ = tx.Respond(queued)
		waitCtx, stop := context.WithCancel(f.ctx)
		defer stop()
		results := make(chan error, 1)
		go func() { results <- f.lobby.Wait(waitCtx, p) }() // ends with waitCtx at the latest
		tick := time.NewTicker(queuedEvery)
		defer tick.Stop()
		for err = errQueued; err == errQueued; {
			select {
			case err = <-results:
			case <-tick.C:
				_ = tx.Respond(queued)
			case <-canceled:
				fail(0, "") // the transaction layer answers 487
				return
			case <-tx.Done():
				fail(0, "")
				return
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrRejected):
			fail(603, "Decline")
			return
		case errors.Is(err, ErrLobbyTimeout):
			fail(480, "Lobby wait timed out")
			return
		case errors.Is(err, ErrLeft):
			fail(487, "Request Terminated") // a BYE in the early dialog
			return
		default: // closing
			fail(503, "Service Unavailable")
			return
		}
	}
	select {
	case <-canceled:
		fail(0, "") // CANCELed before the answer: out again
		return
	default:
	}
	res := okFor(req, d, 200, "OK")
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, INFO, SUBSCRIBE"))
	if len(req.Body()) > 0 {
		// The participant's audio: the media server's answer to its offer,
		// already in the meeting's mix.
		call, err := f.answerMedia(req, id, meeting, p.ID)
		if err != nil {
			f.dropDialog(d)
			_ = f.Leave(meeting, p.ID)
			notAcceptable(tx, req, err)
			return
		}
		f.sip.mu.Lock()
		d.call = call
		f.sip.mu.Unlock()
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody([]byte(call.Answer()))
	}
	if err := tx.Respond(res); err != nil {
		fail(0, "") // the transaction ended (CANCEL, connection lost)
		return
	}
	f.sip.mu.Lock()
	d.confirmed = true
	call := d.call
	f.sip.mu.Unlock()
	if call != nil {
		f.watchCall(meeting, p.ID, call)
	}
	if _, err := f.Participant(meeting, p.ID); err != nil {
		// Ejected or gone between the decision and the answer.
		f.participantGone(meeting, p.ID)
	}
}

// errQueued marks a lobby wait that goes on.
var errQueued = errors.New("queued")

// isGateway reports whether id is a configured PSTN gateway, proven by
// its client certificate.
func (f *Focus) isGateway(id *auth.Identity) bool {
	if id.Method != auth.MethodCertificate {
		return false
	}
	return slices.Contains(f.cfg.Gateways, canonical(id.URI))
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

func (f *Focus) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	d := f.inDialog(req, tx, false)
	if d == nil {
		return
	}
	f.dropDialog(d)
	_ = f.Leave(d.meeting, d.pid)
	reply(tx, req, 200, "OK")
}

// controlStatus maps a control error to a SIP status.
func controlStatus(err error) (int, string) {
	switch {
	case err == nil:
		return 200, "OK"
	case errors.Is(err, ErrForbidden):
		return 403, "Forbidden"
	case errors.Is(err, ErrNoParticipant):
		return 404, "No such participant"
	case errors.Is(err, ErrWrongState):
		return 409, "Conflict"
	case errors.Is(err, ErrInvalid):
		return 400, "Bad Request"
	case errors.Is(err, ErrNotFound):
		return 404, "The meeting has ended"
	}
	return 500, "Server Internal Error"
}

func (f *Focus) handleInfo(req *sip.Request, tx sip.ServerTransaction) {
	d := f.inDialog(req, tx, false)
	if d == nil {
		return
	}
	respond := func(code int, reason string, r *ControlResponse) {
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		if r != nil {
			r.Code, r.Reason = code, reason
			res.AppendHeader(sip.NewHeader("Content-Type", ControlType))
			res.SetBody(r.Marshal())
		}
		_ = tx.Respond(res)
	}
	if digit, ok, err := dtmfDigit(req); ok {
		// A key the caller pressed, signaled outside its media.
		f.sip.mu.Lock()
		call := d.call
		f.sip.mu.Unlock()
		switch {
		case err != nil:
			reply(tx, req, 400, "Bad DTMF")
		case call == nil:
			reply(tx, req, 488, "No media in this dialog")
		default:
			call.Press(digit)
			reply(tx, req, 200, "OK")
		}
		return
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]), ControlType) {
		res := sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
		res.AppendHeader(sip.NewHeader("Accept", ControlType))
		_ = tx.Respond(res)
		return
	}
	cr, err := ParseControl(req.Body())
	if err != nil {
		respond(400, "Bad control request", &ControlResponse{})
		return
	}
	out := &ControlResponse{ID: cr.ID}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	defer cancel()
	switch {
	case cr.AddUser != nil:
		var g *MediaGrant
		g, err = f.AddUser(d.meeting, d.pid, cr.AddUser.Binding)
		out.MediaGrant = g
	case cr.Admit != nil:
		err = f.lobby.Admit(ctx, d.meeting, d.pid, ParticipantID(cr.Admit.Participant))
	case cr.Reject != nil:
		err = f.lobby.Reject(ctx, d.meeting, d.pid, ParticipantID(cr.Reject.Participant))
	case cr.Promote != nil:
		err = f.Promote(ctx, d.meeting, d.pid, ParticipantID(cr.Promote.Participant))
	case cr.Demote != nil:
		err = f.Demote(ctx, d.meeting, d.pid, ParticipantID(cr.Demote.Participant))
	case cr.Eject != nil:
		err = f.Eject(ctx, d.meeting, d.pid, ParticipantID(cr.Eject.Participant))
	case cr.Lock != nil, cr.Unlock != nil:
		err = f.Lock(ctx, d.meeting, d.pid, cr.Lock != nil)
	case cr.MuteAll != nil, cr.UnmuteAll != nil:
		err = f.MuteAll(ctx, d.meeting, d.pid, cr.MuteAll != nil)
	case cr.SetAccess != nil:
		a, _ := ParseAccessPolicy(cr.SetAccess.Policy) // ParseControl checked it
		err = f.SetAccess(ctx, d.meeting, d.pid, a, cr.SetAccess.DialInLobby)
	case cr.SetPresenters != nil:
		p, _ := ParsePresenterPolicy(cr.SetPresenters.Policy)
		err = f.SetPresenters(ctx, d.meeting, d.pid, p, cr.SetPresenters.Presenters)
	}
	code, reason := controlStatus(err)
	if code == 500 {
		f.cfg.Logger.Error("control request failed", "meeting", d.meeting, "op", cr.Op(), "err", err)
	}
	respond(code, reason, out)
}

// handleSubscribe serves the conference event package: a participant
// subscribes to the focus URI and is sent NOTIFYs with the conference
// state it may see until it leaves or the subscription expires.
func (f *Focus) handleSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	if ev := req.GetHeader("Event"); ev == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ev.Value(), ";", 2)[0]), eventConference) {
		res := sip.NewResponseFromRequest(req, 489, "Bad Event", nil)
		res.AppendHeader(sip.NewHeader("Allow-Events", eventConference))
		_ = tx.Respond(res)
		return
	}
	expires := maxSubExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			reply(tx, req, 400, "Bad Expires")
			return
		}
		expires = min(time.Duration(n)*time.Second, maxSubExpires)
		if expires > 0 && expires < minSubExpires {
			res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(minSubExpires/time.Second))))
			_ = tx.Respond(res)
			return
		}
	}
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// A refresh, or an unsubscribe (Expires: 0); either gets a NOTIFY
		// at once (RFC 6665 section 4.2.1.2).
		d := f.inDialog(req, tx, true)
		if d == nil {
			return
		}
		res := okFor(req, d, 200, "OK")
		res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
		_ = tx.Respond(res)
		f.sip.mu.Lock()
		sub := d.sub
		d.expires = f.cfg.Now().Add(expires)
		if expires == 0 {
			d.unsubscribed = true
		} else if d.timer != nil {
			d.timer.Reset(expires)
		}
		f.sip.mu.Unlock()
		switch {
		case sub == nil:
		case expires == 0:
			sub.cancel()
		default:
			sub.resend()
		}
		return
	}
	id := f.cfg.Auth.Authenticate(req, tx)
	if id == nil {
		return
	}
	if !secureTransport(req) {
		reply(tx, req, 403, "Subscriptions need TLS")
		return
	}
	meeting := MeetingID(req.Recipient.User)
	// The subscriber is the participant that joined over this connection
	// with this identity (the one of this Call-ID's INVITE if several):
	// its view, and its subscription ends when it leaves.
	pid := f.participantOnFlow(req, meeting, id.URI)
	if pid == "" {
		reply(tx, req, 403, "Join the meeting first")
		return
	}
	d, ok := f.newDialog(req, meeting, pid, id.URI, true)
	if !ok {
		reply(tx, req, 400, "Missing From tag, Call-ID or Contact")
		return
	}
	d.expires = f.cfg.Now().Add(expires)
	if expires == 0 {
		d.unsubscribed = true // a fetch: the state once, then terminated
	}
	// The dialog is known before the subscriber can send its first NOTIFY.
	f.sip.mu.Lock()
	f.sip.dialogs[d.id] = d
	f.sip.mu.Unlock()
	sub, err := f.subscribe(meeting, pid, func(u Update) { f.notify(d, u) })
	if err != nil {
		f.dropDialog(d)
		if errors.Is(err, ErrFull) {
			reply(tx, req, 403, "Too many subscriptions")
		} else {
			reply(tx, req, 403, "Join the meeting first")
		}
		return
	}
	res := okFor(req, d, 200, "OK")
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	_ = tx.Respond(res)
	f.sip.mu.Lock()
	d.sub = sub
	d.timer = time.AfterFunc(expires, func() {
		f.sip.mu.Lock()
		d.timedOut = true
		f.sip.mu.Unlock()
		sub.cancel()
	})
	f.sip.mu.Unlock()
	if expires == 0 {
		sub.cancel()
	}
}

// participantOnFlow finds the participant of meeting that joined with
// identity uri over req's connection, preferring the one whose INVITE
// had req's Call-ID.
func (f *Focus) participantOnFlow(req *sip.Request, meeting MeetingID, uri string) ParticipantID {
	transport, source := strings.ToUpper(req.Transport()), req.Source()
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	f.sip.mu.Lock()
	defer f.sip.mu.Unlock()
	var pid ParticipantID
	for _, d := range f.sip.dialogs {
		if d.subscription || d.meeting != meeting || d.uri != uri || d.transport != transport || d.source != source {
			continue
		}
		if pid == "" || d.callID == callID {
			pid = d.pid
		}
	}
	return pid
}

// notify sends one NOTIFY in subscription dialog d.
func (f *Focus) notify(d *dialog, u Update) {
	f.sip.mu.Lock()
	d.cseq++
	cseq := d.cseq
	state := "active;expires=" + strconv.Itoa(max(0, int(d.expires.Sub(f.cfg.Now())/time.Second)))
	switch {
	case u.Ended && d.unsubscribed:
		state = "terminated"
	case u.Ended && d.timedOut:
		state = "terminated;reason=timeout"
	case u.Ended:
		state = "terminated;reason=deactivated"
	}
	f.sip.mu.Unlock()
	if u.Ended {
		f.dropDialog(d)
	}
	req := sip.NewRequest(sip.NOTIFY, d.target)
	inDialogRequest(req, d, cseq)
	req.AppendHeader(sip.NewHeader("Event", eventConference))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if !u.Ended {
		req.AppendHeader(sip.NewHeader("Content-Type", ConferenceInfoType))
		req.SetBody(u.Doc)
	}
	if !f.send(req, d) && !u.Ended {
		f.sip.mu.Lock()
		sub := d.sub
		f.sip.mu.Unlock()
		if sub != nil {
			sub.cancel() // the loop delivering this update delivers Ended next
		}
	}
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
	f.sip.mu.Unlock()
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
