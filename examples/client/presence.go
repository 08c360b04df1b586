package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/presence"
)

// refreshExpires is the lifetime asked for registrations, publications
// and subscriptions; they are refreshed at half what the server grants.
const refreshExpires = 600 * time.Second

// pidfType is the content type of presence documents (RFC 3863).
const pidfType = "application/pidf+xml"

// parseStatus reads a presence status as the command line gives it.
func parseStatus(s string) (presence.Availability, error) {
	switch strings.ToLower(s) {
	case "available":
		return presence.Available, nil
	case "busy":
		return presence.Busy, nil
	case "away":
		return presence.Away, nil
	case "dnd", "do-not-disturb":
		return presence.DoNotDisturb, nil
	case "offline":
		return presence.Offline, nil
	}
	return "", fmt.Errorf("status %q: want available, busy, away, dnd or offline", s)
}

// statusWord is how a presence line shows a status: as parseStatus takes
// it, or as the document says if it is none of those.
func statusWord(a presence.Availability) string {
	switch a {
	case presence.DoNotDisturb:
		return "dnd"
	case "":
		return "offline"
	}
	return string(a)
}

// subscription is a SUBSCRIBE dialog (RFC 6665) to one resource's event
// package.
type subscription struct {
	*dialog
	resource string // the presentity or focus
	event    string
	accept   string
	first    *sip.Request // the initial SUBSCRIBE, until it is answered

	// Guarded by dialog.mu.
	lastNotify uint32 // the CSeq of the last NOTIFY taken
	ended      bool   // the server ended it (Subscription-State: terminated)
}

// newSubscription prepares a subscription to resource's event package;
// start sends it.
func (a *agent) newSubscription(resource, event, accept string) (*subscription, error) {
	var target sip.Uri
	if err := sip.ParseUri(resource, &target); err != nil {
		return nil, err
	}
	req := a.newRequest(sip.SUBSCRIBE, target)
	return &subscription{dialog: a.newDialog(req), resource: resource, event: event, accept: accept, first: req}, nil
}

// start sends the initial SUBSCRIBE and returns the expiry granted.
func (s *subscription) start(ctx context.Context, expires time.Duration) (time.Duration, error) {
	req := s.first
	s.addHeaders(req, expires)
	res, err := s.a.do(ctx, req)
	if err != nil {
		return 0, err
	}
	if !res.IsSuccess() {
		return 0, sipStatus(res)
	}
	s.established(res, req.CSeq().SeqNo)
	return grantedExpires(res, expires), nil
}

// refresh sends a SUBSCRIBE in the dialog: a refresh, or with expires 0
// the end of the subscription.
func (s *subscription) refresh(ctx context.Context, expires time.Duration) (time.Duration, error) {
	req := s.request(sip.SUBSCRIBE)
	s.addHeaders(req, expires)
	res, err := s.do(ctx, req)
	if err != nil {
		return 0, err
	}
	if !res.IsSuccess() {
		return 0, sipStatus(res)
	}
	return grantedExpires(res, expires), nil
}

// addHeaders adds the SUBSCRIBE's own headers, asking for expires.
func (s *subscription) addHeaders(req *sip.Request, expires time.Duration) {
	req.AppendHeader(sip.NewHeader("Event", s.event))
	req.AppendHeader(sip.NewHeader("Accept", s.accept))
	if req.GetHeader("Contact") == nil {
		req.AppendHeader(sip.NewHeader("Contact", s.a.contact))
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
}

// owns reports whether req, a NOTIFY, belongs to this subscription: its
// Call-ID, and our tag in its To.
func (s *subscription) owns(req *sip.Request) bool {
	to, callID := req.To(), req.CallID()
	if to == nil || callID == nil || callID.Value() != s.callID {
		return false
	}
	tag, _ := to.Params.Get("tag")
	mine, _ := s.from.Params.Get("tag")
	return tag == mine
}

// take decides whether to act on a NOTIFY of this subscription: not if
// an earlier one (a lower CSeq) arrives after a later one. It notes a
// Subscription-State of terminated.
func (s *subscription) take(req *sip.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := req.GetHeader("Subscription-State"); h != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Value())), "terminated") {
		s.ended = true
	}
	cseq := req.CSeq()
	if cseq == nil || (s.lastNotify != 0 && cseq.SeqNo <= s.lastNotify) {
		return false
	}
	s.lastNotify = cseq.SeqNo
	return true
}

// isEnded reports whether the server ended the subscription.
func (s *subscription) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// grantedExpires reads the Expires of a 2xx, or returns asked.
func grantedExpires(res *sip.Response, asked time.Duration) time.Duration {
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// watcher follows users' presence, one subscription each, and prints a
// presence line whenever what a user shows (status and note) changes.
type watcher struct {
	a     *agent
	out   *printer
	limit int           // print at most this many lines, if not 0
	full  chan struct{} // closed when limit lines are printed

	mu      sync.Mutex
	subs    map[string]*subscription // by presentity
	shown   map[string]string        // presentity -> the last line printed
	printed int
}

// newWatcher makes a watcher printing at most limit lines (0: no limit)
// and sets it to take the agent's NOTIFYs.
func newWatcher(a *agent, out *printer, limit int) *watcher {
	w := &watcher{a: a, out: out, limit: limit, full: make(chan struct{}),
		subs: map[string]*subscription{}, shown: map[string]string{}}
	a.handle(sip.NOTIFY, w.handleNotify)
	return w
}

// watch subscribes to aor's presence, unless it is watched already, and
// returns the expiry granted.
func (w *watcher) watch(ctx context.Context, aor string) (time.Duration, error) {
	w.mu.Lock()
	old := w.subs[aor]
	w.mu.Unlock()
	if old != nil && !old.isEnded() {
		return refreshExpires, nil
	}
	s, err := w.a.newSubscription(aor, "presence", pidfType)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.subs[aor] = s // before the first NOTIFY, which may beat the 200
	w.mu.Unlock()
	granted, err := s.start(ctx, refreshExpires)
	if err != nil {
		w.mu.Lock()
		if w.subs[aor] == s {
			delete(w.subs, aor)
		}
		w.mu.Unlock()
		return 0, fmt.Errorf("watch %s: %w", aor, err)
	}
	return granted, nil
}

// handleNotify takes a presence NOTIFY: a line if the user's status or
// note changed.
func (w *watcher) handleNotify(req *sip.Request, tx sip.ServerTransaction) {
	var s *subscription
	w.mu.Lock()
	for _, x := range w.subs {
		if x.owns(req) {
			s = x
		}
	}
	w.mu.Unlock()
	if s == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Subscription Does Not Exist", nil))
		return
	}
	if !s.take(req) || len(req.Body()) == 0 {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		return
	}
	doc, err := presence.ParsePIDF(req.Body())
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad PIDF document", nil))
		w.out.line("error", "presence of "+s.resource+": "+err.Error())
		return
	}
	fields := []string{"presence", s.resource, statusWord(doc.Availability)}
	if doc.Note != "" {
		fields = append(fields, doc.Note)
	}
	line := strings.Join(fields, " ")
	w.mu.Lock()
	if w.shown[s.resource] != line && (w.limit == 0 || w.printed < w.limit) {
		w.shown[s.resource] = line
		w.out.line(fields...) // under w.mu: lines in the order NOTIFYs were taken
		if w.printed++; w.printed == w.limit {
			close(w.full)
		}
	}
	w.mu.Unlock()
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// refresh refreshes every subscription, subscribing again to those the
// server ended or forgot, and returns the shortest expiry granted. Errors
// go to the printer.
func (w *watcher) refresh(ctx context.Context) time.Duration {
	shortest := refreshExpires
	for _, s := range w.all() {
		var granted time.Duration
		var err error
		if !s.isEnded() {
			granted, err = s.refresh(ctx, refreshExpires)
		}
		if s.isEnded() || err != nil {
			w.mu.Lock()
			delete(w.subs, s.resource)
			w.mu.Unlock()
			if granted, err = w.watch(ctx, s.resource); err != nil {
				w.out.line("error", err.Error())
				continue
			}
		}
		shortest = min(shortest, granted)
	}
	return shortest
}

// resubscribe subscribes again to everyone watched, over a new
// connection (the server forgot the old subscriptions with it).
func (w *watcher) resubscribe(ctx context.Context) error {
	for _, s := range w.all() {
		w.mu.Lock()
		delete(w.subs, s.resource)
		w.mu.Unlock()
		if _, err := w.watch(ctx, s.resource); err != nil {
			return err
		}
	}
	return nil
}

// stop ends every subscription.
func (w *watcher) stop(ctx context.Context) {
	for _, s := range w.all() {
		if !s.isEnded() {
			_, _ = s.refresh(ctx, 0)
		}
	}
}

// all returns the current subscriptions.
func (w *watcher) all() []*subscription {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*subscription, 0, len(w.subs))
	for _, s := range w.subs {
		out = append(out, s)
	}
	return out
}

// publication is this device's presence at the server (RFC 3903).
type publication struct {
	aor    string
	status presence.Availability
	note   string
	etag   string // the server's entity tag, once published
}

// publish sends the publication's document (or, with refresh, only
// extends it) and returns the expiry granted. Expires 0 removes it.
func (a *agent) publish(ctx context.Context, p *publication, expires time.Duration, refresh bool) (time.Duration, error) {
	var self sip.Uri
	if err := sip.ParseUri(p.aor, &self); err != nil {
		return 0, err
	}
	req := a.newRequest(sip.PUBLISH, self)
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	if p.etag != "" {
		req.AppendHeader(sip.NewHeader("SIP-If-Match", p.etag))
	}
	if p.etag == "" || (!refresh && expires > 0) {
		doc := presence.Presence{Entity: p.aor, Availability: p.status, Note: p.note}
		req.AppendHeader(sip.NewHeader("Content-Type", pidfType))
		req.SetBody(doc.MarshalPIDF())
	}
	res, err := a.do(ctx, req)
	switch {
	case err != nil:
		return 0, err
	case res.StatusCode == 412 && p.etag != "" && expires > 0:
		// 412 Conditional Request Failed: the server lost or expired
		// it, so publish afresh.
		p.etag = ""
		return a.publish(ctx, p, expires, false)
	case !res.IsSuccess():
		return 0, sipStatus(res)
	}
	p.etag = ""
	if h := res.GetHeader("SIP-ETag"); h != nil {
		p.etag = strings.TrimSpace(h.Value())
	}
	return grantedExpires(res, expires), nil
}

// handleMessage takes an instant message: a line, and 200. Typing
// notifications (RFC 3994) are answered and not shown; other content
// than text is refused.
func handleMessage(out *printer) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		ct := ""
		if h := req.ContentType(); h != nil {
			ct = strings.ToLower(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
		}
		switch {
		case ct == "application/im-iscomposing+xml":
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			return
		case ct != "" && ct != "text/plain":
			res := sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
			res.AppendHeader(sip.NewHeader("Accept", "text/plain"))
			_ = tx.Respond(res)
			return
		}
		out.line("message", sender(req), string(req.Body()))
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
}

// sender is who sent req: the identity the server asserts (it verified
// it), else the From.
func sender(req *sip.Request) string {
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		if aor, err := auth.CanonicalAOR(h.Value()); err == nil {
			return aor
		}
	}
	if f := req.From(); f != nil {
		if aor, err := auth.CanonicalAOR(f.Address.String()); err == nil {
			return aor
		}
	}
	return "unknown"
}
