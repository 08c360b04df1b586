package conference

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

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
	if holder, ok := f.hostedElsewhere(meeting); ok {
		f.forward(req, tx, id, false, holder) // the subscriber joined there too
		return
	}
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
