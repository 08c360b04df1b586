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

// Owns reports whether req is for a meeting's focus or for a dial-in
// number. A meeting's focus is a Request-URI whose user part has the form
// of a meeting ID, at one of the Directory's tenant domains, or, within a
// dialog, at the Contact the focus gives (FocusConfig.Listeners) or in a
// dialog it has. A meeting of another domain, which a user here joins
// through the Access Edge, is not this focus's.
func (f *Focus) Owns(req *sip.Request) bool {
	if f.isDialInNumber(req.Recipient.User) {
		return true
	}
	if !isMeetingID(req.Recipient.User) {
		return false
	}
	if to := req.To(); to != nil && to.Params.Has("tag") && (f.ownContact(req.Recipient) || f.findDialog(req) != nil) {
		return true
	}
	if f.cfg.Leases != nil && f.ownContact(req.Recipient) {
		// A meeting at this front end's address: where a pool's other
		// front ends redirect the meeting's joins (302, redirect) or send
		// requests in a dialog they passed on.
		return true
	}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	defer cancel()
	_, err := f.cfg.Directory.Tenant(ctx, req.Recipient.Host)
	// A directory that cannot be read: the focus answers (503), rather
	// than send a request for its own meeting out through the edge.
	return !errors.Is(err, auth.ErrUnknownTenant)
}

// ownContact reports whether uri's host and port are those of a Contact
// the focus gives (contactFor).
func (f *Focus) ownContact(uri sip.Uri) bool {
	if strings.EqualFold(uri.Host, "invalid") { // contactFor without a listener
		return true
	}
	hostPort := net.JoinHostPort(strings.Trim(uri.Host, "[]"), strconv.Itoa(uri.Port))
	for _, l := range f.cfg.Listeners {
		if strings.EqualFold(l, hostPort) {
			return true
		}
	}
	return false
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
		f.passedOn(req) // a BYE in a dialog passed on to a meeting's host
		other(req, tx)
	}
}

// HandleRequest serves a request addressed to a focus: INVITE joins the
// meeting (182 Queued while in the lobby, 200 once in), INFO carries
// control requests (ControlType), SUBSCRIBE to the conference event
// package (RFC 4575) gives the conference state, MESSAGE (text/plain, in
// the INVITE dialog) is the participant's chat (see Chat), BYE leaves.
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
	case sip.MESSAGE:
		f.handleMessage(req, tx)
	case sip.NOTIFY:
		// A gateway's progress of a transferred dial-in call (REFER's
		// implicit subscription, RFC 3515): noted, nothing to do.
		if f.inDialog(req, tx, false) != nil {
			reply(tx, req, 200, "OK")
		}
	default:
		res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, INFO, SUBSCRIBE, MESSAGE"))
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
	switch {
	case f.isGateway(id):
		// A PSTN gateway delivers a caller who entered this meeting's
		// conference ID: anonymous, known by its caller ID at most.
		jr = JoinRequest{DialIn: true, Identity: dialInIdentity(req, meeting)}
	case auth.PoolDialIn(req, id):
		// Such a caller, passed on by the front end the gateway reached.
		jr = JoinRequest{DialIn: true, Identity: id}
	}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	p, err := f.Join(ctx, meeting, jr)
	cancel()
	if err != nil {
		if holder, ok := HostOf(err); ok {
			if f.cfg.Forwarder != nil {
				f.forward(req, tx, jr.Identity, jr.DialIn, holder)
			} else {
				f.redirect(req, tx, holder)
			}
			return
		}
		if answerUnavailable(req, tx, err) {
			return
		}
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
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, INFO, SUBSCRIBE, MESSAGE"))
	if len(req.Body()) > 0 {
		// The participant's audio: the media server's answer to its offer,
		// already in the meeting's mix.
		ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
		call, err := f.answerMedia(ctx, req, id, meeting, p.ID)
		cancel()
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
	case errors.Is(err, ErrTooFast):
		return 503, "Too many requests"
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
	case cr.Hand != nil:
		pid := d.pid
		if cr.Hand.Participant != "" {
			pid = ParticipantID(cr.Hand.Participant)
		}
		err = f.SetHand(ctx, d.meeting, d.pid, pid, cr.Hand.Raised)
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
