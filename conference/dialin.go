package conference

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/media/audio"
)

// The IVR's patience with a dial-in caller.
const (
	ivrAttempts    = 3                // tries at the conference ID
	ivrFirstDigit  = 15 * time.Second // to start entering it
	ivrNextDigit   = 8 * time.Second  // between two keys
	ivrNameLength  = 5 * time.Second  // a recorded name, at most
	maxConfIDDigit = 16
)

// isDialInNumber reports whether user is one of the access numbers.
func (f *Focus) isDialInNumber(user string) bool {
	return slices.Contains(f.cfg.DialInNumbers, user)
}

// plainRTP reports whether id may send plain RTP: a gateway configured
// for it, proven by its client certificate.
func (f *Focus) plainRTP(id *auth.Identity) bool {
	return f.isGateway(id) && slices.Contains(f.cfg.PlainRTPGateways, canonical(id.URI))
}

// dialInIdentity is who a caller delivered by a gateway is: anonymous,
// for one meeting, known by its caller ID's display name at most.
func dialInIdentity(req *sip.Request, meeting MeetingID) *auth.Identity {
	name := ""
	if from := req.From(); from != nil {
		name = from.DisplayName
	}
	return &auth.Identity{URI: "sip:" + newTag() + "@anonymous.invalid", DisplayName: name, Kind: auth.Anonymous, Meeting: string(meeting)}
}

// answerMedia gives joined participant pid its media: the media server
// answers the INVITE's offer, and the call joins the meeting with a media
// token the focus grants.
func (f *Focus) answerMedia(ctx context.Context, req *sip.Request, id *auth.Identity, meeting MeetingID, pid ParticipantID) (Call, error) {
	call, err := f.mediaServer().AnswerCall(string(req.Body()), f.plainRTP(id))
	if err != nil {
		return nil, err
	}
	g, err := f.AddUser(meeting, pid, "")
	if err == nil {
		err = call.Join(ctx, meeting, pid, g.Token)
	}
	if err != nil {
		_ = call.Close()
		return nil, err
	}
	return call, nil
}

// notAcceptable answers an INVITE whose offer the media server refused.
func notAcceptable(tx sip.ServerTransaction, req *sip.Request, err error) {
	res := sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil)
	warning := strings.NewReplacer(`"`, "'", "\r", " ", "\n", " ").Replace(err.Error())
	res.AppendHeader(sip.NewHeader("Warning", `399 parley "`+warning+`"`))
	_ = tx.Respond(res)
}

// watchCall takes out of its meeting a participant whose media ended on
// the media server's side (nothing heard from it, the server closing):
// the focus ends its dialog with a BYE.
func (f *Focus) watchCall(meeting MeetingID, pid ParticipantID, call Call) {
	f.goRun(func() {
		select {
		case <-call.Done():
			_ = f.Leave(meeting, pid)
		case <-f.ctx.Done():
		}
	})
}

// dialIn answers a call a gateway delivers to an access number and runs
// the IVR on it.
func (f *Focus) dialIn(req *sip.Request, tx sip.ServerTransaction, id *auth.Identity) {
	switch {
	case !f.isGateway(id):
		reply(tx, req, 403, "Dial-in numbers take calls from gateways only")
		return
	case len(req.Body()) == 0:
		reply(tx, req, 488, "Not Acceptable Here") // the IVR needs media from the start
		return
	case f.mediaServer() == nil:
		reply(tx, req, 503, "No media server")
		return
	}
	call, err := f.mediaServer().AnswerCall(string(req.Body()), f.plainRTP(id))
	if err != nil {
		notAcceptable(tx, req, err)
		return
	}
	d, ok := f.newDialog(req, "", "", id.URI, false)
	if !ok {
		_ = call.Close()
		reply(tx, req, 400, "Missing From tag, Call-ID or Contact")
		return
	}
	d.contact = f.contactFor(MeetingID(req.Recipient.User), d.transport)
	d.call = call
	f.sip.mu.Lock()
	f.sip.dialogs[d.id] = d
	f.sip.mu.Unlock()
	res := okFor(req, d, 200, "OK")
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, INFO, NOTIFY"))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.SetBody([]byte(call.Answer()))
	if err := tx.Respond(res); err != nil {
		f.dropDialog(d)
		return
	}
	f.sip.mu.Lock()
	d.confirmed = true
	f.sip.mu.Unlock()
	if !f.goRun(func() { f.ivr(req, d, call) }) {
		f.dropDialog(d)
	}
}

// ivr asks a dial-in caller for the conference ID and its name, and puts
// it in the meeting, or its lobby until a leader admits it.
func (f *Focus) ivr(req *sip.Request, d *dialog, call Call) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go func() { // ends with ctx at the latest
		select {
		case <-call.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	var m *Meeting
	for try := 0; try < ivrAttempts && m == nil; try++ {
		if call.Play(ctx, PromptConferenceID) != nil {
			return
		}
		digits, ok := readDigits(ctx, call)
		if ctx.Err() != nil {
			return
		}
		if ok {
			m, _ = f.cfg.Meetings.ByDialInID(ctx, digits)
		}
		if m == nil {
			f.cfg.Logger.Info("dial-in: no meeting with that conference ID", "digits", len(digits))
			if call.Play(ctx, PromptNotFound) != nil {
				return
			}
		}
	}
	if m == nil {
		f.hangUp(ctx, d, call, PromptRefused, "No such conference ID")
		return
	}
	if _, ok := f.hostedElsewhere(m.ID); ok {
		f.transfer(ctx, req, d, call, m.ID)
		return
	}
	// Anonymous callers record their name: it identifies them in the
	// meeting.
	if call.Play(ctx, PromptRecordName) != nil || call.Play(ctx, PromptBeep) != nil {
		return
	}
	name, err := call.Record(ctx, ivrNameLength)
	if err != nil {
		return
	}
	p, err := f.Join(ctx, m.ID, JoinRequest{DialIn: true, Identity: dialInIdentity(req, m.ID), RecordedName: name})
	if _, ok := HostOf(err); ok && f.cfg.Forwarder != nil {
		f.transfer(ctx, req, d, call, m.ID) // another front end started hosting it meanwhile
		return
	}
	if err != nil {
		f.cfg.Logger.Info("dial-in caller not admitted", "meeting", m.ID, "err", err)
		f.hangUp(ctx, d, call, PromptRefused, "Not admitted to this meeting")
		return
	}
	f.sip.mu.Lock()
	live := f.sip.dialogs[d.id] == d
	if live {
		d.meeting, d.pid = m.ID, p.ID // from now on, leaving or ejection ends the dialog
	}
	f.sip.mu.Unlock()
	if !live { // the caller hung up meanwhile
		_ = f.Leave(m.ID, p.ID)
		return
	}
	if p.State == InLobby {
		// The caller hears that it waits while it waits: an admission
		// cuts the prompt short.
		waitCtx, admitted := context.WithCancel(ctx)
		prompted := make(chan struct{})
		go func() { defer close(prompted); _ = call.Play(waitCtx, PromptLobby) }()
		err := f.lobby.Wait(ctx, p)
		admitted()
		<-prompted
		if err != nil {
			if errors.Is(err, ErrRejected) || errors.Is(err, ErrLobbyTimeout) {
				_ = call.Play(ctx, PromptRefused)
			}
			_ = f.Leave(m.ID, p.ID) // ends the dialog with a BYE, if it is still there
			return
		}
	}
	_ = call.Play(ctx, PromptJoining)
	g, err := f.AddUser(m.ID, p.ID, "")
	if err == nil {
		err = call.Join(ctx, m.ID, p.ID, g.Token)
	}
	if err != nil {
		f.cfg.Logger.Warn("dial-in caller's media could not join", "meeting", m.ID, "participant", p.ID, "err", err)
		_ = f.Leave(m.ID, p.ID)
		return
	}
	select {
	case <-call.Done():
		_ = f.Leave(m.ID, p.ID)
	case <-f.ctx.Done():
	}
}

// transferWait bounds how long a transferred dial-in call may last after
// the gateway accepted the REFER: it ends it itself once the new call is
// answered.
const transferWait = 32 * time.Second // 64*T1

// transfer hands a dial-in caller, whose meeting another front end of the
// pool hosts, to the meeting itself: the IVR's media is here, the
// meeting's mix at the host. The focus asks the gateway to call the
// meeting's focus URI instead (REFER, RFC 3515, in this call's dialog);
// that call reaches this front end like any gateway's call to a meeting,
// and is passed on to the host (FocusConfig.Forwarder), whose bridge
// answers it. The gateway ends this call once the new one is answered.
// A gateway that does not take REFER (its INVITE's Allow) is told the
// caller cannot join. The recorded name stays here: the host knows the
// caller by its caller ID.
func (f *Focus) transfer(ctx context.Context, req *sip.Request, d *dialog, call Call, meeting MeetingID) {
	if !allows(req, sip.REFER) {
		f.cfg.Logger.Info("dial-in: the meeting is hosted by another front end, and the gateway takes no REFER", "meeting", meeting)
		f.hangUp(ctx, d, call, PromptRefused, "Meeting hosted by another front end")
		return
	}
	_ = call.Play(ctx, PromptJoining)
	target := sip.Uri{Scheme: "sip", User: string(meeting), Host: req.Recipient.Host}
	refer := sip.NewRequest(sip.REFER, d.target)
	f.sip.mu.Lock()
	d.cseq++
	cseq := d.cseq
	f.sip.mu.Unlock()
	inDialogRequest(refer, d, cseq)
	refer.AppendHeader(sip.NewHeader("Refer-To", "<"+target.String()+">"))
	refer.AppendHeader(sip.NewHeader("Referred-By", "<"+target.String()+">"))
	if !f.send(refer, d) {
		f.cfg.Logger.Info("dial-in: the gateway refused the transfer", "meeting", meeting)
		f.hangUp(ctx, d, call, PromptRefused, "Transfer refused")
		return
	}
	f.cfg.Logger.Info("dial-in caller transferred to the meeting's host", "meeting", meeting)
	select {
	case <-call.Done(): // the gateway's BYE
	case <-ctx.Done():
	case <-time.After(transferWait):
		f.endDialog(d, "Transferred")
	}
}

// allows reports whether req's Allow header lists method.
func allows(req *sip.Request, method sip.RequestMethod) bool {
	for _, h := range req.GetHeaders("Allow") {
		for _, m := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(m), string(method)) {
				return true
			}
		}
	}
	return false
}

// readDigits reads a conference ID: keys up to #, * to start again. ok is
// false when the caller entered nothing in time.
func readDigits(ctx context.Context, call Call) (string, bool) {
	var digits []byte
	t := time.NewTimer(ivrFirstDigit)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", false
		case <-t.C:
			return string(digits), len(digits) > 0
		case k := <-call.Digits():
			switch {
			case k == '#':
				return string(digits), len(digits) > 0
			case k == '*':
				digits = digits[:0]
			case k >= '0' && k <= '9':
				digits = append(digits, k)
				if len(digits) > maxConfIDDigit {
					return "", false
				}
			}
			t.Reset(ivrNextDigit)
		}
	}
}

// hangUp plays a last prompt and ends the caller's dialog with a BYE.
func (f *Focus) hangUp(ctx context.Context, d *dialog, call Call, p Prompt, reason string) {
	_ = call.Play(ctx, p)
	f.endDialog(d, reason)
}

// dtmfDigit reads a key from a SIP INFO body (application/dtmf-relay or
// application/dtmf); ok is false for other content types.
func dtmfDigit(req *sip.Request) (digit byte, ok bool, err error) {
	ct := req.ContentType()
	if ct == nil {
		return 0, false, nil
	}
	switch strings.ToLower(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0])) {
	case "application/dtmf-relay":
		d, err := audio.ParseDTMFRelay(req.Body())
		return d, true, err
	case "application/dtmf":
		d, err := audio.ParseDTMFBody(req.Body())
		return d, true, err
	}
	return 0, false, nil
}
