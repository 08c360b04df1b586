package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/conference"
)

// guestAOR is the From of a meeting guest: anonymous, known by the
// display name it gives.
const guestAOR = "sip:guest@anonymous.invalid"

// runJoin is the join command: in a meeting over SIP (no media),
// following its roster.
func runJoin(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "join", "[-guest NAME [-key KEY]] [-admit-all] [-for D] <meeting ID | focus URI | join URL>")
	guest := fs.String("guest", "", "join as a guest shown as `NAME`, with the conference key instead of a user's password")
	key := fs.String("key", "", "the meeting's conference `KEY`, for a guest (default: the join URL's #key=, else the password)")
	admitAll := fs.Bool("admit-all", false, "admit everyone seen waiting in the lobby (leaders only)")
	stay := fs.Duration("for", 0, "stay for this `duration` (default: until quit, the end of stdin or a signal)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want join [flags] <meeting ID | focus URI | join URL>")
	}
	meeting, domain, urlKey, err := parseMeeting(fs.Arg(0))
	if err != nil {
		return usagef("%v", err)
	}
	var id identity
	switch {
	case *guest != "":
		k := *key
		if k == "" {
			k = urlKey
		}
		if k == "" {
			var uerr usageError
			if k, err = e.password(); errors.As(err, &uerr) {
				return usagef("a guest needs the conference key: -key, the join URL's #key=, -password-file or %s", passwordEnv)
			} else if err != nil {
				return err
			}
		}
		id = identity{aor: guestAOR, displayName: *guest, username: "meeting:" + meeting, password: k, domain: defaultDomain}
	case *key != "":
		return usagef("-key is for guests (-guest NAME)")
	default:
		if id, err = e.user(); err != nil {
			return err
		}
	}
	if domain == "" {
		domain = id.domain
	}
	j := &joiner{e: e, meeting: meeting, admitAll: *admitAll, roster: map[string]member{}, asked: map[string]bool{},
		wake: make(chan struct{}, 1), bye: make(chan struct{})}
	if err := sip.ParseUri("sip:"+meeting+"@"+domain, &j.focus); err != nil {
		return usagef("%s: %v", fs.Arg(0), err)
	}
	if j.a, err = newAgent(e, id); err != nil {
		return err
	}
	defer j.a.Close()
	j.a.handle(sip.NOTIFY, j.handleNotify)
	j.a.handle(sip.BYE, j.handleBye)
	ctx, cancel := withFor(ctx, *stay)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	j.in = lines(e.stdin, done)
	j.untilDeadline = *stay > 0
	defer j.subscribing.Wait()
	return j.run(ctx)
}

// parseMeeting reads a meeting's ID (and its domain, and a conference
// key, when the form carries them) from an ID, a focus URI
// (sip:<ID>@<domain>) or a join URL (https://host/meet/<ID>#key=<key>).
func parseMeeting(s string) (id, domain, key string, err error) {
	switch {
	case strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://"):
		u, err := url.Parse(s)
		if err != nil {
			return "", "", "", err
		}
		rest, ok := strings.CutPrefix(u.Path, "/meet/")
		if !ok || rest == "" || strings.Contains(rest, "/") {
			return "", "", "", fmt.Errorf("%s: not a join URL (https://host/meet/<ID>)", s)
		}
		frag, _ := url.ParseQuery(u.Fragment)
		id, key = rest, frag.Get("key")
	case strings.HasPrefix(strings.ToLower(s), "sip:"):
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			return "", "", "", fmt.Errorf("%s: %w", s, err)
		}
		id, domain = u.User, strings.ToLower(u.Host)
	default:
		id = s
	}
	if id == "" || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return "", "", "", fmt.Errorf("%q is not a meeting ID", id)
	}
	return id, domain, key, nil
}

// member is how the roster shows a participant.
type member struct{ status, name string }

// joiner is one participant's session in a meeting.
type joiner struct {
	e             *env
	a             *agent
	meeting       string
	focus         sip.Uri
	admitAll      bool
	in            <-chan string // stdin's lines
	untilDeadline bool          // the end of stdin does not end the session
	subscribing   sync.WaitGroup
	bye           chan struct{} // closed when the focus sends BYE (under mu)
	byeOnce       sync.Once     // under mu
	byeCause      int           // the BYE's Reason cause (under mu)
	wake          chan struct{} // something for the main loop: admissions, resync

	mu      sync.Mutex
	call    *dialog       // the INVITE's, set before it is sent
	sub     *subscription // to the conference state
	state   conference.ConferenceInfo
	roster  map[string]member // by participant ID
	asked   map[string]bool   // admissions asked for
	toAdmit []string
	resync  bool // the state has a gap: subscribe again
	control int  // the last control request's ID
}

// errLeft says the participant left before being answered.
var errLeft = errors.New("left before being admitted")

// Rejoining: a participant whose front end died, or whose join the
// front end passed on to a meeting's host that died (a BYE with Reason
// cause 503), joins again, through the next of -sip's servers if its own
// is gone, for up to rejoinFor.
const (
	rejoinFor   = 45 * time.Second
	rejoinEvery = time.Second
)

// errRejoin: the session ended in a way that calls for joining again.
var errRejoin = errors.New("join again")

// run joins, stays and leaves, joining again when the meeting's host or
// the connection is lost.
func (j *joiner) run(ctx context.Context) error {
	focus := j.focus
	var rejoining time.Time // zero: the first join
	for {
		err := j.join(ctx)
		if errors.Is(err, errLeft) {
			j.e.out.line("left", j.meeting)
			return nil
		}
		if err != nil && !rejoining.IsZero() && time.Since(rejoining) < rejoinFor && ctx.Err() == nil {
			// Any front end of the pool will do: the next one.
			j.e.out.line("error", "join again: "+err.Error())
			j.a.failover(j.a.addr())
			select {
			case <-time.After(rejoinEvery):
			case <-ctx.Done():
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", j.meeting, err)
		}
		j.e.out.line("joined", j.meeting)
		if err := j.stay(ctx); !errors.Is(err, errRejoin) {
			return err
		}
		j.e.out.line("rejoining", j.meeting)
		rejoining = time.Now()
		j.mu.Lock()
		j.focus = focus // not the host a redirect named: it may be the one gone
		j.sub, j.state, j.roster, j.asked, j.toAdmit, j.resync = nil, conference.ConferenceInfo{}, map[string]member{}, map[string]bool{}, nil, false
		j.bye, j.byeOnce, j.byeCause = make(chan struct{}), sync.Once{}, 0
		j.mu.Unlock()
	}
}

// stay follows the meeting until the participant leaves (nil), the focus
// ends the session (nil), or the host or the connection is lost
// (errRejoin).
func (j *joiner) stay(ctx context.Context) error {
	j.subscribing.Wait() // the lobby's subscription, if any
	j.mu.Lock()
	subscribed := j.sub != nil
	j.mu.Unlock()
	if !subscribed {
		j.subscribe(ctx)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	refreshAt := time.Now().Add(refreshExpires / 2)
	j.mu.Lock()
	bye := j.bye
	j.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return j.leave(ctx)
		case <-bye:
			j.mu.Lock()
			cause := j.byeCause
			j.mu.Unlock()
			if cause == 503 {
				j.e.out.line("host-lost", j.meeting)
				return errRejoin
			}
			j.e.out.line("left", j.meeting)
			return nil
		case <-j.wake:
			j.work(ctx)
		case line, ok := <-j.in:
			switch {
			case !ok && j.untilDeadline:
				j.in = nil
			case !ok || j.command(ctx, line):
				return j.leave(ctx)
			}
		case now := <-tick.C:
			if !j.a.connected() {
				j.e.out.line("connection-lost", j.a.addr())
				j.a.failover(j.a.addr()) // the front end is gone: the next one
				return errRejoin
			}
			if now.After(refreshAt) {
				refreshAt = now.Add(refreshExpires / 2)
				j.mu.Lock()
				s := j.sub
				j.mu.Unlock()
				if s != nil {
					if granted, err := s.refresh(ctx, refreshExpires); err != nil {
						j.e.out.line("error", "refresh conference subscription: "+err.Error())
					} else {
						refreshAt = now.Add(max(granted/2, 10*time.Second))
					}
				}
			}
		}
	}
}

// invite returns a new INVITE to the focus (no SDP: signaling only) and
// makes it the call's dialog.
func (j *joiner) invite() *sip.Request {
	req := j.a.newRequest(sip.INVITE, j.focus)
	req.AppendHeader(sip.NewHeader("Contact", j.a.contact))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, NOTIFY, INFO"))
	req.SetBody(nil)
	j.mu.Lock()
	j.call = j.a.newDialog(req)
	j.mu.Unlock()
	return req
}

// join sends the INVITE (no SDP: signaling only) and waits for the
// answer: 182 Queued in the lobby, where it subscribes to the conference
// state already, then 200. Leaving in the lobby (ctx, quit, the end of
// stdin) cancels it and returns errLeft.
func (j *joiner) join(ctx context.Context) error {
	req := j.invite()
	send := func(opts ...sipgo.ClientRequestOption) (sip.ClientTransaction, error) {
		dialCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.a.timeout)
		defer cancel()
		return j.a.client.TransactionRequest(dialCtx, req, opts...)
	}
	tx, err := send()
	if err != nil {
		return connectionError(j.a.addr(), err)
	}
	defer func() { tx.Terminate() }()
	first := time.NewTimer(j.a.timeout) // until the first answer
	defer first.Stop()
	answers, provisional, inLobby, redirects := 0, false, false, 0
	// stdin is read from the lobby on: until then the attempt ends with
	// the server's answer (an error, say), whatever stdin does.
	var in <-chan string
	leave := func() error {
		if provisional {
			j.cancel(ctx, req, tx)
		}
		return errLeft
	}
	for {
		select {
		case res := <-tx.Responses():
			first.Stop()
			switch {
			case res.IsProvisional():
				provisional = true
				if res.StatusCode == sip.StatusQueued && !inLobby {
					inLobby, in = true, j.in
					j.e.out.line("lobby", j.meeting)
					j.subscribing.Go(func() { j.subscribe(ctx) })
				}
			case isChallenge(res) && (answers == 0 || answers == 1 && isStale(challenges(res))):
				answers++
				tx.Terminate()
				if err := j.a.authorize(ctx, req, res); err != nil {
					return err
				}
				if tx, err = send(sipgo.ClientRequestAddVia); err != nil {
					return connectionError(j.a.addr(), err)
				}
				first.Reset(j.a.timeout)
			case res.IsSuccess():
				j.a.sawFlow(res)
				j.call.established(res, req.CSeq().SeqNo)
				return j.ack(req)
			case res.StatusCode == sip.StatusMovedTemporarily && redirects == 0 && !provisional && res.Contact() != nil:
				// Another front end of the pool hosts the meeting: the
				// INVITE again, to the meeting there (once: no loops),
				// and the session's later requests there too.
				redirects++
				tx.Terminate()
				target := res.Contact().Address
				addr := net.JoinHostPort(strings.Trim(target.Host, "[]"), strconv.Itoa(target.Port))
				if target.Port == 0 {
					addr = net.JoinHostPort(strings.Trim(target.Host, "[]"), "5061")
				}
				j.e.out.line("redirected", addr)
				j.a.moveTo(addr)
				j.focus = target
				req = j.invite()
				answers = 0
				if tx, err = send(); err != nil {
					return connectionError(j.a.addr(), err)
				}
				first.Reset(j.a.timeout)
			default:
				return sipStatus(res)
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return err
			}
			return errors.New("the INVITE ended without an answer")
		case <-first.C:
			return errors.New("no answer from the server in time")
		case line, ok := <-in:
			switch {
			case !ok && j.untilDeadline:
				in, j.in = nil, nil
			case !ok || strings.TrimSpace(line) == "quit":
				return leave()
			default:
				j.e.out.line("error", "not in the meeting yet: only quit")
			}
		case <-ctx.Done():
			return leave()
		}
	}
}

// ack acknowledges the 200 to the INVITE (RFC 3261 section 13.2.2.4).
func (j *joiner) ack(invite *sip.Request) error {
	j.call.mu.Lock()
	ack := j.call.requestLocked(sip.ACK, invite.CSeq().SeqNo)
	j.call.mu.Unlock()
	ack.SetBody(nil)
	return j.a.client.WriteRequest(ack)
}

// cancel CANCELs the INVITE still waiting (section 9.1) and waits a
// moment for its 487.
func (j *joiner) cancel(ctx context.Context, invite *sip.Request, tx sip.ClientTransaction) {
	c := sip.NewRequest(sip.CANCEL, invite.Recipient)
	c.AppendHeader(sip.HeaderClone(invite.Via()))
	c.AppendHeader(sip.HeaderClone(invite.From()))
	c.AppendHeader(sip.HeaderClone(invite.To()))
	c.AppendHeader(sip.HeaderClone(invite.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: invite.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.SetBody(nil)
	j.a.route(c)
	ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), j.a.timeout)
	defer stop()
	asIs := func(*sipgo.Client, *sip.Request) error { return nil } // the INVITE's Via, not a new one
	if _, err := j.a.client.Do(ctx, c, asIs); err != nil {
		return
	}
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return
			}
		case <-tx.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

// subscribe subscribes to the meeting's conference state (RFC 4575);
// a failure is an error line.
func (j *joiner) subscribe(ctx context.Context) {
	s, err := j.a.newSubscription(j.focus.String(), "conference", conference.ConferenceInfoType)
	if err != nil {
		j.e.out.line("error", "conference state: "+err.Error())
		return
	}
	j.mu.Lock()
	j.sub, j.state, j.resync = s, conference.ConferenceInfo{}, false
	j.mu.Unlock()
	if _, err := s.start(ctx, refreshExpires); err != nil {
		j.e.out.line("error", "conference state: "+err.Error())
	}
}

// handleNotify takes a conference-info NOTIFY: the state brought up to
// date, a roster line per participant that changed.
func (j *joiner) handleNotify(req *sip.Request, tx sip.ServerTransaction) {
	j.mu.Lock()
	s := j.sub
	j.mu.Unlock()
	if s == nil || !s.owns(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Subscription Does Not Exist", nil))
		return
	}
	if !s.take(req) || len(req.Body()) == 0 {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		return
	}
	ci, err := conference.ParseConferenceInfo(req.Body())
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad conference-info document", nil))
		j.e.out.line("error", "conference state: "+err.Error())
		return
	}
	j.mu.Lock()
	if j.sub != s {
		j.mu.Unlock() // an old subscription's
	} else if err := j.state.Apply(ci); err != nil {
		j.resync = true
		j.mu.Unlock()
		j.e.out.line("error", "conference state: "+err.Error())
		j.poke()
	} else {
		j.showRoster()
		j.mu.Unlock()
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// showRoster prints a line for each participant whose status or name
// changed, and queues for admission those newly seen in the lobby. It
// runs under j.mu.
func (j *joiner) showRoster() {
	now := map[string]member{}
	if j.state.Users != nil {
		for _, u := range j.state.Users.User {
			for _, ep := range u.Endpoints {
				pid := ep.ParticipantID()
				if pid == "" {
					continue
				}
				m := member{status: ep.Status, name: u.DisplayText}
				if m.status == "" {
					m.status = "unknown"
				}
				if m.name == "" {
					m.name = ep.DisplayText
				}
				if m.name == "" {
					m.name = u.Entity
				}
				now[string(pid)] = m
			}
		}
	}
	for _, pid := range slices.Sorted(maps.Keys(now)) {
		if m := now[pid]; j.roster[pid] != m {
			j.e.out.line("roster", pid, m.status, m.name)
		}
	}
	for _, pid := range slices.Sorted(maps.Keys(j.roster)) {
		if _, ok := now[pid]; !ok && j.roster[pid].status != "disconnected" {
			j.e.out.line("roster", pid, "disconnected", j.roster[pid].name)
		}
	}
	j.roster = now
	if !j.admitAll {
		return
	}
	for _, pid := range slices.Sorted(maps.Keys(now)) {
		if now[pid].status == "pending" && !j.asked[pid] {
			j.asked[pid] = true
			j.toAdmit = append(j.toAdmit, pid)
			j.poke()
		}
	}
}

// poke wakes the main loop.
func (j *joiner) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// work does what the NOTIFYs asked of the main loop: admissions, and a
// new subscription when the state has a gap.
func (j *joiner) work(ctx context.Context) {
	j.mu.Lock()
	admit, resync, old := j.toAdmit, j.resync, j.sub
	j.toAdmit = nil
	j.mu.Unlock()
	for _, pid := range admit {
		j.admit(ctx, pid)
	}
	if resync {
		if old != nil {
			_, _ = old.refresh(ctx, 0)
		}
		j.subscribe(ctx)
	}
}

// command runs a line of stdin in the meeting and reports whether it was
// quit.
func (j *joiner) command(ctx context.Context, line string) (quit bool) {
	name, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch name {
	case "":
	case "quit":
		return true
	case "admit":
		if pid := strings.TrimSpace(rest); pid != "" {
			j.admit(ctx, pid)
		} else {
			j.e.out.line("error", "admit: want admit <participant-id>")
		}
	default:
		j.e.out.line("error", fmt.Sprintf("unknown command %q: want admit or quit", name))
	}
	return false
}

// admit asks the focus to admit a participant from the lobby: an INFO
// with a control request in the INVITE's dialog (RFC 4579 style, see
// package conference).
func (j *joiner) admit(ctx context.Context, pid string) {
	j.mu.Lock()
	j.control++
	creq := &conference.ControlRequest{ID: strconv.Itoa(j.control), Admit: &conference.Target{Participant: pid}}
	j.mu.Unlock()
	req := j.call.request(sip.INFO)
	req.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	req.SetBody(creq.Marshal())
	res, err := j.call.do(ctx, req)
	if err == nil && !res.IsSuccess() {
		err = sipStatus(res)
	}
	if err != nil {
		j.e.out.line("error", "admit "+pid+": "+err.Error())
		return
	}
	j.e.out.line("admitted", pid)
}

// leave ends the subscription and the call (BYE), even when ctx has
// ended.
func (j *joiner) leave(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	j.mu.Lock()
	s := j.sub
	j.mu.Unlock()
	if s != nil && !s.isEnded() {
		_, _ = s.refresh(ctx, 0)
	}
	res, err := j.call.do(ctx, j.call.request(sip.BYE))
	j.e.out.line("left", j.meeting)
	switch {
	case err != nil:
		return fmt.Errorf("%s: BYE: %w", j.meeting, err)
	case !res.IsSuccess() && res.StatusCode != 481: // 481: the focus ended it first
		return fmt.Errorf("%s: BYE: %w", j.meeting, sipStatus(res))
	}
	return nil
}

// reasonCause is the cause of req's SIP Reason header (RFC 3326), or 0.
func reasonCause(req *sip.Request) int {
	for _, h := range req.GetHeaders("Reason") {
		proto, params, _ := strings.Cut(h.Value(), ";")
		if !strings.EqualFold(strings.TrimSpace(proto), "SIP") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "cause") {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
	}
	return 0
}

// handleBye takes the focus's BYE: ejected, the meeting ended, or (cause
// 503) the meeting's host is gone and the participant joins again.
func (j *joiner) handleBye(req *sip.Request, tx sip.ServerTransaction) {
	j.mu.Lock()
	defer j.mu.Unlock()
	call := j.call
	if call == nil || req.CallID() == nil || req.CallID().Value() != call.callID {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	j.byeOnce.Do(func() {
		j.byeCause = reasonCause(req)
		close(j.bye)
	})
}
