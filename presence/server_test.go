package presence

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// publish sends a PUBLISH for the phone's user.
func (p *phone) publish(doc []byte, etag string, expires string, extra ...sip.Header) *sip.Response {
	p.t.Helper()
	var to sip.Uri
	_ = sip.ParseUri(p.aor(), &to)
	h := []sip.Header{&sip.ToHeader{Address: to}, sip.NewHeader("Event", "presence")}
	if expires != "" {
		h = append(h, sip.NewHeader("Expires", expires))
	}
	if etag != "" {
		h = append(h, sip.NewHeader("SIP-If-Match", etag))
	}
	if doc != nil {
		h = append(h, sip.NewHeader("Content-Type", pidfType))
	}
	req := p.request(sip.PUBLISH, p.aor(), append(h, extra...)...)
	if doc != nil {
		req.SetBody(doc)
	}
	return p.do(req)
}

func (p *phone) publishState(a Availability, note string) string {
	p.t.Helper()
	res := p.publish((&Presence{Entity: p.aor(), Availability: a, Note: note}).MarshalPIDF(), "", "600")
	if res.StatusCode != 200 || res.GetHeader("SIP-ETag") == nil {
		p.t.Fatalf("PUBLISH %s: %d %s", a, res.StatusCode, res.Reason)
	}
	return res.GetHeader("SIP-ETag").Value()
}

// subscription is the watcher's side of a presence subscription.
type watch struct {
	p          *phone
	presentity string
	callID     sip.CallIDHeader
	fromTag    string
	toTag      string
	cseq       uint32
}

func (p *phone) subscribe(presentity string, expires string, extra ...sip.Header) (*sip.Response, *watch) {
	p.t.Helper()
	w := &watch{p: p, presentity: presentity, callID: sip.CallIDHeader(sip.GenerateTagN(16)), fromTag: sip.GenerateTagN(8)}
	res := w.send(expires, extra...)
	if res.StatusCode == 200 {
		w.toTag, _ = res.To().Params.Get("tag")
	}
	return res, w
}

func (w *watch) send(expires string, extra ...sip.Header) *sip.Response {
	p := w.p
	p.t.Helper()
	var uri, from sip.Uri
	_ = sip.ParseUri(w.presentity, &uri)
	_ = sip.ParseUri(p.aor(), &from)
	req := sip.NewRequest(sip.SUBSCRIBE, uri)
	fp, tp := sip.NewParams(), sip.NewParams()
	fp.Add("tag", w.fromTag)
	if w.toTag != "" {
		tp.Add("tag", w.toTag)
	}
	w.cseq++
	callID := w.callID
	req.AppendHeader(&sip.FromHeader{Address: from, Params: fp})
	req.AppendHeader(&sip.ToHeader{Address: uri, Params: tp})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: w.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(sip.NewHeader("Contact", p.contact))
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Accept", pidfType))
	req.AppendHeader(sip.NewHeader("Expires", expires))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetTransport("TLS")
	req.SetDestination(p.env.addr)
	return p.do(req)
}

// next waits for the watcher's next NOTIFY and parses it.
func (w *watch) next(t *testing.T) (*Presence, string) {
	t.Helper()
	select {
	case n := <-w.p.notifies:
		doc, err := ParsePIDF(n.Body())
		if err != nil {
			t.Fatalf("NOTIFY body: %v\n%s", err, n.Body())
		}
		if ev := n.GetHeader("Event"); ev == nil || ev.Value() != "presence" {
			t.Fatalf("NOTIFY Event %v", ev)
		}
		if mf := n.MaxForwards(); mf == nil || mf.Val() != 70 {
			t.Fatalf("NOTIFY Max-Forwards %v, want 70 (RFC 3261 section 8.1.1)", mf)
		}
		return doc, n.GetHeader("Subscription-State").Value()
	case <-time.After(5 * time.Second):
		t.Fatalf("%s got no NOTIFY", w.p.user)
		return nil, ""
	}
}

// until waits for a NOTIFY whose document satisfies ok.
func (w *watch) until(t *testing.T, ok func(*Presence) bool) *Presence {
	t.Helper()
	for range 10 {
		doc, _ := w.next(t)
		if ok(doc) {
			return doc
		}
	}
	t.Fatal("no NOTIFY with the expected view")
	return nil
}

func TestPublishAndWatch(t *testing.T) {
	e := newEnv(t)
	u, _ := e.directory.User(context.Background(), "sip:alice@example.test")
	u.Title, u.Company, u.TimeZone = "Engineer", "Example", "Europe/Paris"
	u.Phones = auth.Phones{Work: "+1 555 0100", Mobile: "+1 555 0101", Home: "+1 555 0102"}
	_ = e.directory.PutUser(*u)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	alice.publishState(Busy, "In a meeting")

	res, w := bob.subscribe("sip:alice@example.test", "600")
	if res.StatusCode != 200 || w.toTag == "" || res.GetHeader("Expires") == nil {
		t.Fatalf("SUBSCRIBE: %d, To tag %q", res.StatusCode, w.toTag)
	}
	doc, state := w.next(t)
	if !strings.HasPrefix(state, "active;expires=") {
		t.Fatalf("Subscription-State %q", state)
	}
	// A colleague sees status, note, personal data, time zone, work phone;
	// not the mobile or home phone.
	if doc.Availability != Busy || doc.Note != "In a meeting" || doc.Personal == nil || doc.Personal.Title != "Engineer" ||
		doc.Personal.TimeZone != "Europe/Paris" || doc.Phones == nil || doc.Phones.Work == "" || doc.Phones.Mobile != "" || doc.Phones.Home != "" {
		t.Fatalf("colleague's view %+v %+v %+v", doc, doc.Personal, doc.Phones)
	}
	// A change of state reaches the watcher.
	alice.publishState(DoNotDisturb, "")
	w.until(t, func(p *Presence) bool { return p.Availability == DoNotDisturb })
}

func TestPolicyChangeRenotifiesWithLessData(t *testing.T) {
	e := newEnv(t)
	u, _ := e.directory.User(context.Background(), "sip:alice@example.test")
	u.Phones = auth.Phones{Work: "+1 555 0100", Mobile: "+1 555 0101"}
	_ = e.directory.PutUser(*u)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	ctx := context.Background()
	if err := e.policy.SetContact(ctx, alice.aor(), bob.aor(), Workgroup); err != nil {
		t.Fatal(err)
	}
	_, w := bob.subscribe(alice.aor(), "600")
	if doc, _ := w.next(t); doc.Phones == nil || doc.Phones.Mobile == "" {
		t.Fatalf("workgroup view lacks the mobile phone: %+v", doc.Phones)
	}
	// Alice moves bob to External: he is told at once, and sees less.
	if err := e.policy.SetContact(ctx, alice.aor(), bob.aor(), External); err != nil {
		t.Fatal(err)
	}
	doc := w.until(t, func(p *Presence) bool { return p.Phones == nil })
	if doc.Availability != Available || doc.Personal == nil || doc.Personal.TimeZone != "" {
		t.Fatalf("external view %+v %+v", doc, doc.Personal)
	}
}

func TestBlockedUserSeesOfflineAndCannotMessage(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	bob.register(600)
	alice.publishState(Available, "around")
	_, w := bob.subscribe(alice.aor(), "600")
	if doc, _ := w.next(t); doc.Availability != Available {
		t.Fatalf("before the block: %s", doc.Availability)
	}
	if err := e.policy.SetContact(context.Background(), alice.aor(), bob.aor(), Blocked); err != nil {
		t.Fatal(err)
	}
	doc := w.until(t, func(p *Presence) bool { return p.Availability == Offline })
	if doc.Note != "" || doc.Personal != nil || doc.Phones != nil || doc.Calendar != nil {
		t.Fatalf("a blocked watcher sees %+v", doc)
	}
	if res := bob.message(alice.aor(), "let me in"); res.StatusCode != 480 {
		t.Fatalf("MESSAGE from a blocked user: %d, want 480", res.StatusCode)
	}
	expectNone(t, alice.inbox, 200*time.Millisecond, "alice received a MESSAGE from a blocked user")
}

func TestPrivacyModeHidesFromNonContacts(t *testing.T) {
	e := newEnv(t)
	alice, bob, carol := e.phone("alice"), e.phone("bob"), e.phone("carol")
	alice.register(600)
	ctx := context.Background()
	_ = e.policy.SetContact(ctx, alice.aor(), bob.aor(), Colleague)
	_ = e.policy.SetPrivacyMode(ctx, alice.aor(), true)
	alice.publishState(Busy, "")
	_, wb := bob.subscribe(alice.aor(), "600")
	_, wc := carol.subscribe(alice.aor(), "600")
	if doc, _ := wb.next(t); doc.Availability != Busy {
		t.Fatalf("contact in privacy mode sees %s", doc.Availability)
	}
	if doc, _ := wc.next(t); doc.Availability != Offline || doc.Personal != nil {
		t.Fatalf("non-contact in privacy mode sees %+v", doc)
	}
}

func TestPublicationLifecycle(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	_, w := bob.subscribe(alice.aor(), "600")
	if doc, _ := w.next(t); doc.Availability != Available {
		t.Fatalf("registered without publication: %s, want available", doc.Availability)
	}
	etag := alice.publishState(Away, "")
	w.until(t, func(p *Presence) bool { return p.Availability == Away })

	// Refresh without a body: a new entity tag, same state.
	res := alice.publish(nil, etag, "600")
	if res.StatusCode != 200 || res.GetHeader("SIP-ETag").Value() == etag {
		t.Fatalf("refresh: %d, ETag %v", res.StatusCode, res.GetHeader("SIP-ETag"))
	}
	if res := alice.publish(nil, etag, "600"); res.StatusCode != 412 {
		t.Fatalf("refresh with the replaced ETag: %d, want 412", res.StatusCode)
	}
	etag = res.GetHeader("SIP-ETag").Value()
	// Modify.
	res = alice.publish((&Presence{Entity: alice.aor(), Availability: Busy}).MarshalPIDF(), etag, "600")
	if res.StatusCode != 200 {
		t.Fatalf("modify: %d", res.StatusCode)
	}
	w.until(t, func(p *Presence) bool { return p.Availability == Busy })
	etag = res.GetHeader("SIP-ETag").Value()
	// Remove: back to what registration says.
	if res := alice.publish(nil, etag, "0"); res.StatusCode != 200 {
		t.Fatalf("remove: %d", res.StatusCode)
	}
	w.until(t, func(p *Presence) bool { return p.Availability == Available })
	// Expiry of a publication (the subscription and the registration
	// last longer).
	if res := alice.publish((&Presence{Entity: alice.aor(), Availability: DoNotDisturb}).MarshalPIDF(), "", "60"); res.StatusCode != 200 {
		t.Fatalf("PUBLISH for 60 s: %d", res.StatusCode)
	}
	w.until(t, func(p *Presence) bool { return p.Availability == DoNotDisturb })
	e.clock.advance(61 * time.Second)
	w.until(t, func(p *Presence) bool { return p.Availability == Available })
}

func TestPublishBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	alice.publishState(Busy, "steady")
	dtd := `<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY x "boom">]><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.test"><tuple id="a"><status><basic>open</basic></status><note>&x;</note></tuple></presence>`
	tests := []struct {
		name string
		res  func() *sip.Response
		want int
	}{
		{"malformed PIDF", func() *sip.Response { return alice.publish([]byte("<presence>"), "", "600") }, 400},
		{"PIDF with a DTD", func() *sip.Response { return alice.publish([]byte(dtd), "", "600") }, 400},
		{"oversized PIDF", func() *sip.Response {
			return alice.publish([]byte(strings.Repeat(" ", MaxPIDFSize+1)), "", "600")
		}, 413},
		{"not PIDF", func() *sip.Response {
			req := alice.request(sip.PUBLISH, alice.aor(), sip.NewHeader("Event", "presence"), sip.NewHeader("Content-Type", "text/plain"))
			req.SetBody([]byte("busy"))
			return alice.do(req)
		}, 415},
		{"expiry too brief", func() *sip.Response {
			return alice.publish((&Presence{Entity: alice.aor(), Availability: Away}).MarshalPIDF(), "", "10")
		}, 423},
		{"unknown entity tag", func() *sip.Response { return alice.publish(nil, "no-such-etag", "600") }, 412},
		{"unknown event package", func() *sip.Response {
			req := alice.request(sip.PUBLISH, alice.aor(), sip.NewHeader("Event", "dialog"))
			return alice.do(req)
		}, 489},
		{"someone else's presence", func() *sip.Response {
			req := alice.request(sip.PUBLISH, "sip:bob@example.test", sip.NewHeader("Event", "presence"), sip.NewHeader("Content-Type", pidfType))
			req.SetBody((&Presence{Entity: "sip:bob@example.test", Availability: Offline}).MarshalPIDF())
			return alice.do(req)
		}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := tt.res(); res.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", res.StatusCode, res.Reason, tt.want)
			}
		})
	}
	_, w := bob.subscribe(alice.aor(), "600")
	if doc, _ := w.next(t); doc.Availability != Busy || doc.Note != "steady" {
		t.Fatalf("after refused PUBLISHes alice shows %s %q, want the published busy %q", doc.Availability, doc.Note, "steady")
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	// The PresenceServer serves only presence (other packages are the
	// Router's, see TestSubscribeToOtherEventReachesTheDevice).
	bad := bob.request(sip.SUBSCRIBE, alice.aor(), sip.NewHeader("Event", "message-summary"), sip.NewHeader("Contact", bob.contact))
	if res, _ := e.presence.subscribe(bad, &auth.Identity{URI: bob.aor()}); res.StatusCode != 489 || res.GetHeader("Allow-Events") == nil {
		t.Fatalf("unknown event package: %d, Allow-Events %v", res.StatusCode, res.GetHeader("Allow-Events"))
	}
	for len(bob.notifies) > 0 {
		<-bob.notifies
	}
	if res, _ := bob.subscribe("sip:nobody@example.test", "600"); res.StatusCode != 404 {
		t.Fatalf("unknown presentity: %d", res.StatusCode)
	}
	res, w := bob.subscribe(alice.aor(), "600")
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	w.next(t)
	// Refresh within the dialog: 200 and a NOTIFY.
	if res := w.send("900"); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	if _, state := w.next(t); state != "active;expires=900" && state != "active;expires=899" {
		t.Fatalf("after refresh: %q, want active for 900 s", state)
	}
	// Unsubscribe: a final NOTIFY.
	if res := w.send("0"); res.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d", res.StatusCode)
	}
	if _, state := w.next(t); state != "terminated" {
		t.Fatalf("final NOTIFY state %q", state)
	}
	if res := w.send("600"); res.StatusCode != 481 {
		t.Fatalf("refresh of an ended subscription: %d, want 481", res.StatusCode)
	}
	// Expiry: a final NOTIFY with reason=timeout.
	_, w2 := bob.subscribe(alice.aor(), "60")
	w2.next(t)
	e.clock.advance(61 * time.Second)
	if _, state := w2.next(t); state != "terminated;reason=timeout" {
		t.Fatalf("expired subscription's final NOTIFY: %q", state)
	}
	if n := e.presence.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}

func TestAggregationOfDevices(t *testing.T) {
	e := newEnv(t)
	laptop, mobile, bob := e.phone("alice"), e.phone("alice"), e.phone("bob")
	laptop.register(600)
	mobile.register(600)
	laptop.publishState(Available, "")
	mobileTag := mobile.publishState(Busy, "on a call")
	_, w := bob.subscribe("sip:alice@example.test", "600")
	if doc, _ := w.next(t); doc.Availability != Busy || doc.Note != "on a call" {
		t.Fatalf("laptop available, mobile busy: %s %q, want busy", doc.Availability, doc.Note)
	}
	if res := mobile.publish(nil, mobileTag, "0"); res.StatusCode != 200 {
		t.Fatalf("remove: %d", res.StatusCode)
	}
	w.until(t, func(p *Presence) bool { return p.Availability == Available })
}

func TestSpimLimitsStrangersOnly(t *testing.T) {
	e := newEnv(t)
	alice, bob, carol := e.phone("alice"), e.phone("bob"), e.phone("carol")
	alice.register(600)
	_ = e.policy.SetContact(context.Background(), alice.aor(), bob.aor(), Colleague)
	// carol is not alice's contact: a burst of 20 new messages, then 503.
	var last *sip.Response
	for i := range 21 {
		last = carol.message(alice.aor(), "buy now")
		if i < 20 && last.StatusCode != 200 {
			t.Fatalf("message %d from a stranger: %d", i+1, last.StatusCode)
		}
	}
	if last.StatusCode != 503 || last.GetHeader("Retry-After") == nil {
		t.Fatalf("21st message from a stranger: %d, Retry-After %v; want 503 with Retry-After", last.StatusCode, last.GetHeader("Retry-After"))
	}
	// Her subscriptions to alice are refused too while she is limited.
	if res, _ := carol.subscribe(alice.aor(), "600"); res.StatusCode != 503 {
		t.Fatalf("SUBSCRIBE from a limited stranger: %d, want 503", res.StatusCode)
	}
	// bob, a contact, is not limited.
	for i := range 30 {
		if res := bob.message(alice.aor(), "hi"); res.StatusCode != 200 {
			t.Fatalf("message %d from a contact: %d", i+1, res.StatusCode)
		}
	}
	for len(alice.inbox) > 0 {
		<-alice.inbox
	}
}

func TestBlockedWatcherLearnsNothingFromActivity(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	_ = e.policy.SetContact(context.Background(), alice.aor(), bob.aor(), Blocked)
	_, w := bob.subscribe(alice.aor(), "600")
	if doc, _ := w.next(t); doc.Availability != Offline {
		t.Fatalf("blocked watcher sees %s", doc.Availability)
	}
	// Alice is busy, available, away: the blocked watcher's view does not
	// change, so it is sent nothing that would time her activity.
	for _, a := range []Availability{Busy, Available, Away} {
		alice.publishState(a, "")
	}
	expectNone(t, bob.notifies, 300*time.Millisecond, "blocked watcher got a NOTIFY for activity it may not see")
}

func TestSubscriptionBelongsToItsWatcher(t *testing.T) {
	e := newEnv(t)
	alice, bob, carol := e.phone("alice"), e.phone("bob"), e.phone("carol")
	alice.register(600)
	_, w := bob.subscribe(alice.aor(), "600")
	w.next(t)
	// carol replays bob's dialog identifiers to end or redirect his
	// subscription.
	stolen := *w
	stolen.p = carol
	if res := stolen.send("0"); res.StatusCode != 481 {
		t.Fatalf("refresh of bob's subscription by carol: %d, want 481", res.StatusCode)
	}
	if n := e.presence.Subscriptions(); n != 1 {
		t.Fatalf("%d subscriptions, want bob's still there", n)
	}
}

// subscribeDirect runs a SUBSCRIBE through the server's logic, as if it
// had arrived over transport from 127.0.0.1:5999.
func subscribeDirect(t *testing.T, e *env, watcher, transport, expires string, i int) int {
	t.Helper()
	msg := fmt.Sprintf("SUBSCRIBE sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKd%d\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:%s@example.test>;tag=t%d\r\nTo: <sip:alice@example.test>\r\nCall-ID: direct-%d\r\n"+
		"CSeq: 1 SUBSCRIBE\r\nContact: <sip:%s@127.0.0.1:5999;transport=tls>\r\nEvent: presence\r\nExpires: %s\r\nContent-Length: 0\r\n\r\n",
		i, watcher, i, i, watcher, expires)
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	req.SetTransport(transport)
	req.SetSource("127.0.0.1:5999")
	id := &auth.Identity{URI: "sip:" + watcher + "@example.test", Kind: auth.Internal, Tenant: "example.test"}
	res, _ := e.presence.subscribe(req, id)
	if h := res.GetHeader("Expires"); h != nil && res.StatusCode == 200 {
		if v, _ := strconv.Atoi(h.Value()); v > 3600 {
			t.Fatalf("granted %d s, above the 3600 s maximum", v)
		}
	}
	return res.StatusCode
}

func TestSubscriptionLimits(t *testing.T) {
	e := newEnv(t)
	_ = e.policy.SetContact(context.Background(), "sip:alice@example.test", "sip:bob@example.test", Colleague)
	if code := subscribeDirect(t, e, "bob", "UDP", "600", 0); code != 403 {
		t.Fatalf("SUBSCRIBE over UDP: %d, want 403", code)
	}
	if code := subscribeDirect(t, e, "bob", "TLS", "4294967295", 1); code != 200 {
		t.Fatalf("SUBSCRIBE with the largest Expires: %d, want 200 (capped)", code)
	}
	if code := subscribeDirect(t, e, "bob", "TLS", "36028797018963968", 2); code != 400 {
		t.Fatalf("SUBSCRIBE with an Expires beyond 32 bits: %d, want 400", code)
	}
	for i := 3; i < 202; i++ {
		subscribeDirect(t, e, "bob", "TLS", "600", i)
	}
	if code := subscribeDirect(t, e, "bob", "TLS", "600", 202); code != 403 {
		t.Fatalf("bob's 201st subscription: %d, want 403 (limit 200)", code)
	}
}

func TestPublicationsPerUserBounded(t *testing.T) {
	e := newEnv(t)
	for i := range 20 { // 20 devices, each on a connection of its own
		e.phone("alice").publishState(Available, strconv.Itoa(i))
	}
	pubs, err := e.presence.cfg.Publications.Publications(context.Background(), "sip:alice@example.test", time.Now())
	var notes []string
	for _, p := range pubs {
		notes = append(notes, p.Doc.Note)
	}
	if err != nil || len(pubs) != 16 || notes[0] != "4" || notes[15] != "19" {
		t.Fatalf("publications kept for one user: %v (%v), want the 16 newest, 4 to 19", notes, err)
	}
}

// TestNewPublicationReplacesTheConnectionsOld: a device that starts a new
// publication instead of modifying its own (baresip 1.0 does, when its
// previous PUBLISH is unanswered) leaves no orphan behind that would
// outrank its later state; another device's publication stays.
func TestNewPublicationReplacesTheConnectionsOld(t *testing.T) {
	e := newEnv(t)
	laptop, phone, bob := e.phone("alice"), e.phone("alice"), e.phone("bob")
	laptop.register(600)
	phone.publishState(Away, "phone")
	_, w := bob.subscribe("sip:alice@example.test", "600")
	laptop.publishState(Busy, "first")
	laptop.publishState(Away, "second") // a new publication, not a modification
	w.until(t, func(p *Presence) bool { return p.Availability == Away && p.Note == "second" })
	pubs, err := e.presence.cfg.Publications.Publications(context.Background(), "sip:alice@example.test", time.Now())
	var notes []string
	for _, p := range pubs {
		notes = append(notes, p.Doc.Note)
	}
	if err != nil || strings.Join(notes, " ") != "phone second" {
		t.Fatalf("publications kept: %v (%v), want the phone's and the laptop's latest", notes, err)
	}
}

func TestDeviceHangingUpSignsOut(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	_, w := bob.subscribe(alice.aor(), "600")
	if doc, _ := w.next(t); doc.Availability != Available {
		t.Fatalf("registered alice shows %s", doc.Availability)
	}
	alice.hangUp()
	w.until(t, func(p *Presence) bool { return p.Availability == Offline })
	if bs, _ := e.registrar.Lookup(context.Background(), alice.aor()); len(bs) != 0 {
		t.Fatalf("%d bindings left after alice's connection closed", len(bs))
	}
}

// TestCrashedDeviceDoesNotStayBusy: a device that published busy and then
// lost its connection (no unPUBLISH, no REGISTER Expires: 0) shows its
// user's other devices' state at once, not busy until the publication
// expires.
func TestCrashedDeviceDoesNotStayBusy(t *testing.T) {
	e := newEnv(t)
	laptop, phone, bob := e.phone("alice"), e.phone("alice"), e.phone("bob")
	laptop.register(600)
	phone.register(600)
	laptop.publishState(Busy, "in a call")
	phone.publishState(Away, "")
	_, w := bob.subscribe("sip:alice@example.test", "600")
	w.until(t, func(p *Presence) bool { return p.Availability == Busy })
	laptop.hangUp()
	w.until(t, func(p *Presence) bool { return p.Availability == Away && p.Note == "" })
	phone.hangUp()
	w.until(t, func(p *Presence) bool { return p.Availability == Offline })
}

// TestSigningInShowsAvailable: a watcher sees a user who signs in (a
// REGISTER, no publication yet) as available at once, and offline when
// the device unregisters.
func TestSigningInShowsAvailable(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	_, w := bob.subscribe(alice.aor(), "600")
	w.until(t, func(p *Presence) bool { return p.Availability == Offline })
	alice.register(600)
	w.until(t, func(p *Presence) bool { return p.Availability == Available })
	alice.register(0)
	w.until(t, func(p *Presence) bool { return p.Availability == Offline })
}
