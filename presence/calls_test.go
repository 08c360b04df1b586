package presence

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// calls is a phone's call handling, on sipgo's dialog caches.
type calls struct {
	answers  bool // answer incoming calls, or only ring
	dialogs  *sipgo.DialogServerCache
	outgoing *sipgo.DialogClientCache

	rang     chan *sip.Request
	answered chan *sipgo.DialogServerSession
	canceled chan struct{}
	acked    chan struct{}
	byes     chan struct{}
	infos    chan *sip.Request
}

// enableCalls lets the phone place calls and take them (answering them if
// answers, else ringing until canceled).
func (p *phone) enableCalls(answers bool) *phone {
	var contact sip.ContactHeader
	_ = sip.ParseUri(strings.Trim(p.contact, "<>"), &contact.Address)
	c := &calls{answers: answers, dialogs: sipgo.NewDialogServerCache(p.client, contact),
		outgoing: sipgo.NewDialogClientCache(p.client, contact),
		rang:     make(chan *sip.Request, 4), answered: make(chan *sipgo.DialogServerSession, 4),
		canceled: make(chan struct{}, 4), acked: make(chan struct{}, 4), byes: make(chan struct{}, 4), infos: make(chan *sip.Request, 4)}
	p.calls = c
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		sess, err := c.dialogs.ReadInvite(req, tx)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 500, err.Error(), nil))
			return
		}
		_ = sess.Respond(180, "Ringing", nil)
		c.rang <- req
		if !c.answers {
			<-tx.Done() // until the caller or the proxy cancels
			c.canceled <- struct{}{}
			return
		}
		c.answered <- sess // before answering: sipgo's 2xx Respond waits for the ACK
		// A callee's own claim of identity, which the server must not pass on.
		_ = sess.Respond(200, "OK", nil, sip.NewHeader("P-Asserted-Identity", "<sip:ceo@example.test>"))
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		if c.dialogs.ReadAck(req, tx) == nil {
			c.acked <- struct{}{}
		}
	})
	p.srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		c.infos <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if c.dialogs.ReadBye(req, tx) == nil || c.outgoing.ReadBye(req, tx) == nil {
			c.byes <- struct{}{}
		}
	})
	return p
}

// call places a call to target through the server and waits for the
// answer (or failure).
func (p *phone) call(ctx context.Context, target string) (*sipgo.DialogClientSession, error) {
	var to sip.Uri
	_ = sip.ParseUri(target, &to)
	req := p.request(sip.INVITE, target, &sip.ToHeader{Address: to}, sip.NewHeader("Contact", p.contact))
	sess, err := p.calls.outgoing.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	return sess, sess.WaitAnswer(ctx, sipgo.AnswerOptions{})
}

func wait[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		var zero T
		return zero
	}
}

func TestCallForksAndTheFirstAnswerWins(t *testing.T) {
	e := newEnv(t)
	laptop, mobile, bob := e.phone("alice").enableCalls(true), e.phone("alice").enableCalls(false), e.phone("bob").enableCalls(false)
	laptop.register(600)
	mobile.register(600)
	bob.register(600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	sess, err := bob.call(ctx, "sip:alice@example.test")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	defer sess.Close()
	// Both devices rang; the laptop answered; the mobile was canceled.
	wait(t, mobile.calls.rang, "ringing on the mobile")
	wait(t, mobile.calls.canceled, "CANCEL to the mobile")
	answered := wait(t, laptop.calls.answered, "answer on the laptop")
	defer answered.Close()
	if rr := sess.InviteResponse.GetHeaders("Record-Route"); len(rr) != 1 {
		t.Fatalf("Record-Route %v, want the server once (both legs over TLS)", rr)
	}
	// The ACK and the BYE follow the dialog's route through the server
	// and reach the other side over its own connection.
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, laptop.calls.acked, "ACK on the laptop")
	if err := answered.Bye(ctx); err != nil {
		t.Fatalf("BYE from the callee: %v", err)
	}
	wait(t, bob.calls.byes, "BYE at the caller")
}

func TestCallerHangsUp(t *testing.T) {
	e := newEnv(t)
	cl := answeredCall(t, e)
	alice, sess, ctx := cl.alice, cl.sess, cl.ctx
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sess.Bye(ctx); err != nil {
		t.Fatalf("BYE from the caller: %v", err)
	}
	wait(t, alice.calls.byes, "BYE at the callee")
}

func TestUnansweredCallCanceledByCaller(t *testing.T) {
	e := newEnv(t)
	laptop, mobile, bob := e.phone("alice").enableCalls(false), e.phone("alice").enableCalls(false), e.phone("bob").enableCalls(false)
	laptop.register(600)
	mobile.register(600)
	bob.register(600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ringing, stop := context.WithCancel(ctx)
	go func() {
		<-laptop.calls.rang
		<-mobile.calls.rang
		stop() // bob gives up: sipgo sends CANCEL
	}()
	_, err := bob.call(ringing, "sip:alice@example.test")
	if err == nil {
		t.Fatal("a canceled call reported an answer")
	}
	wait(t, laptop.calls.canceled, "CANCEL to the laptop")
	wait(t, mobile.calls.canceled, "CANCEL to the mobile")
}

func TestCallToUnknownOrOfflineUser(t *testing.T) {
	e := newEnv(t)
	bob := e.phone("bob").enableCalls(false)
	bob.register(600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for target, want := range map[string]string{"sip:nobody@example.test": "404", "sip:carol@example.test": "480"} {
		_, err := bob.call(ctx, target)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("call to %s: %v, want %s", target, err, want)
		}
	}
}

func TestInDialogRequestWithForgedRouteRefused(t *testing.T) {
	e := newEnv(t)
	c := dialRaw(t, e)
	signIn(t, c, "bob", "forged")
	// A token naming the sender's own flow and a victim's, well formed,
	// but not MACed by the server.
	enc := base64.RawURLEncoding
	payload := "TLS\x00" + c.conn.LocalAddr().String() + "\x00TLS\x00127.0.0.1:1"
	forged := enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(make([]byte, 16))
	for _, route := range []string{
		"<sip:" + e.addr + ";transport=tls;lr;ft=" + forged + ">",
		"<sip:" + e.addr + ";transport=tls;lr;ft=AAAA.BBBB>",
		"<sip:" + e.addr + ";transport=tls;lr>",
	} {
		msg := "BYE sip:alice@192.0.2.7:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKforged" + randHex(4) + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=a\r\nTo: <sip:alice@example.test>;tag=b\r\n" +
			"Call-ID: forged-1\r\nCSeq: 2 BYE\r\nRoute: " + route + "\r\nContent-Length: 0\r\n\r\n"
		if code, _, err := c.roundTrip([]byte(msg)); err != nil || code != 403 {
			t.Fatalf("BYE with Route %s: %d %v, want 403", route, code, err)
		}
	}
}

func TestCallAcrossTransportsRecordsRouteTwice(t *testing.T) {
	e := newEnv(t)
	browser, bob := e.phone("alice").overWSS().enableCalls(true), e.phone("bob").enableCalls(false)
	browser.register(600)
	bob.register(600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := bob.call(ctx, "sip:alice@example.test")
	if err != nil {
		t.Fatalf("call to a WebSocket client: %v", err)
	}
	defer sess.Close()
	ans := wait(t, browser.calls.answered, "answer in the browser")
	defer ans.Close()
	rr := sess.InviteResponse.GetHeaders("Record-Route")
	if len(rr) != 2 || !strings.Contains(rr[0].Value(), "transport=ws") || !strings.Contains(rr[1].Value(), "transport=tls") {
		t.Fatalf("Record-Route %v, want the WSS side then the TLS side (RFC 5658)", rr)
	}
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, browser.calls.acked, "ACK in the browser")
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, browser.calls.byes, "BYE in the browser")
}

func TestDialogRouteOnlyFromTheDialogsFlows(t *testing.T) {
	e := newEnv(t)
	cl := answeredCall(t, e)
	alice, sess, ctx := cl.alice, cl.sess, cl.ctx
	_ = sess.Ack(ctx)
	// carol has seen the dialog's Record-Route (a valid token) and tries
	// to end the call from her own connection.
	route := sess.InviteResponse.GetHeader("Record-Route").Value()
	c := dialRaw(t, e)
	signIn(t, c, "carol", "intruder")
	msg := "BYE " + strings.Trim(alice.contact, "<>") + " SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKintruder\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=x\r\nTo: <sip:alice@example.test>;tag=y\r\n" +
		"Call-ID: intruder-1\r\nCSeq: 9 BYE\r\nRoute: " + route + "\r\nContent-Length: 0\r\n\r\n"
	if code, _, err := c.roundTrip([]byte(msg)); err != nil || code != 403 {
		t.Fatalf("BYE with the dialog's route from another connection: %d %v, want 403", code, err)
	}
	expectNone(t, alice.calls.byes, 100*time.Millisecond, "alice received the intruder's BYE")
}

func TestDialogCarriesOnlyVerifiedIdentities(t *testing.T) {
	e := newEnv(t)
	cl := answeredCall(t, e)
	alice, bob, sess, ctx := cl.alice, cl.bob, cl.sess, cl.ctx
	// The answer reached bob with the identity the server verified, not
	// the one alice's device claimed.
	if pai := sess.InviteResponse.GetHeaders("P-Asserted-Identity"); len(pai) != 1 || pai[0].Value() != "<sip:alice@example.test>" {
		t.Fatalf("P-Asserted-Identity in the answer %v, want only alice's", pai)
	}
	_ = sess.Ack(ctx)
	// An in-dialog request carrying a forged identity and credentials
	// reaches alice without them.
	info := sip.NewRequest(sip.INFO, sess.InviteResponse.Contact().Address)
	info.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:ceo@example.test>"))
	info.AppendHeader(sip.NewHeader("proxy-authorization", `Digest username="bob", response="secret"`))
	if res, err := sess.Do(ctx, info); err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO in the dialog: %v %v", res, err)
	}
	got := wait(t, alice.calls.infos, "INFO at alice")
	for _, h := range got.Headers() {
		switch strings.ToLower(h.Name()) {
		case "p-asserted-identity", "proxy-authorization", "authorization":
			t.Fatalf("in-dialog request carried %s: %s", h.Name(), h.Value())
		}
	}
	// The dialog's route, reused in another call (another Call-ID), opens
	// nothing.
	other := sip.NewRequest(sip.INFO, sess.InviteResponse.Contact().Address)
	for _, h := range sess.InviteRequest.Headers() {
		if n := strings.ToLower(h.Name()); n == "from" || n == "to" {
			other.AppendHeader(sip.HeaderClone(h))
		}
	}
	callID := sip.CallIDHeader("another-call")
	other.AppendHeader(&callID)
	other.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INFO})
	other.AppendHeader(sip.NewHeader("Route", sess.InviteResponse.GetHeader("Record-Route").Value()))
	other.SetTransport("TLS")
	other.SetDestination(e.addr)
	if res, err := bob.client.Do(ctx, other); err != nil || res.StatusCode != 403 {
		t.Fatalf("the dialog's route used with another Call-ID: %v %v, want 403", res, err)
	}
}

func TestUnansweredCallTimesOut(t *testing.T) {
	e := newEnv(t, func(c *RouterConfig) { c.RingTimeout = time.Second })
	alice, bob := e.phone("alice").enableCalls(false), e.phone("bob").enableCalls(false)
	alice.register(600)
	bob.register(600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := bob.call(ctx, "sip:alice@example.test")
	if err == nil || !strings.Contains(err.Error(), "408") {
		t.Fatalf("unanswered call: %v, want 408", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the caller waited %v for a 1 s ring timeout", d)
	}
	wait(t, alice.calls.canceled, "CANCEL to the ringing device")
}

// acceptSubscriptions makes the phone accept SUBSCRIBEs for other event
// packages and send one NOTIFY through the route the server recorded.
func (p *phone) acceptSubscriptions() *phone {
	p.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		params := sip.NewParams()
		params.Add("tag", "dev-"+p.user)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.ReplaceHeader(&sip.ToHeader{Address: req.To().Address, Params: params})
		res.AppendHeader(sip.NewHeader("Contact", p.contact))
		_ = tx.Respond(res)

		n := sip.NewRequest(sip.NOTIFY, req.Contact().Address)
		n.AppendHeader(&sip.FromHeader{Address: req.To().Address, Params: params})
		n.AppendHeader(&sip.ToHeader{Address: req.From().Address, Params: req.From().Params})
		n.AppendHeader(sip.HeaderClone(req.CallID()))
		n.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
		for _, rr := range req.GetHeaders("Record-Route") { // the UAS's route set (RFC 3261 12.1.1)
			n.AppendHeader(sip.NewHeader("Route", rr.Value()))
		}
		n.AppendHeader(sip.NewHeader("Event", req.GetHeader("Event").Value()))
		n.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=600"))
		n.AppendHeader(sip.NewHeader("Contact", p.contact))
		n.AppendHeader(sip.NewHeader("Content-Type", "application/dialog-info+xml"))
		n.SetBody([]byte("<dialog-info/>"))
		n.SetTransport("TLS")
		n.SetDestination(p.env.addr)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = p.client.Do(ctx, n)
		}()
	})
	return p
}

func TestSubscribeToOtherEventReachesTheDevice(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice").acceptSubscriptions(), e.phone("bob")
	alice.register(600)
	bob.register(600)
	res := bob.do(bob.request(sip.SUBSCRIBE, alice.aor(), &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.test"}},
		sip.NewHeader("Event", "dialog"), sip.NewHeader("Contact", bob.contact), sip.NewHeader("Expires", "600")))
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE for the dialog event: %d %s", res.StatusCode, res.Reason)
	}
	if pai := res.GetHeader("P-Asserted-Identity"); pai == nil || pai.Value() != "<sip:alice@example.test>" {
		t.Fatalf("P-Asserted-Identity %v", pai)
	}
	// alice's device NOTIFYs through the recorded route to bob.
	n := wait(t, bob.notifies, "NOTIFY from alice's device")
	if ev := n.GetHeader("Event"); ev == nil || ev.Value() != "dialog" || string(n.Body()) != "<dialog-info/>" {
		t.Fatalf("NOTIFY %v %q", ev, n.Body())
	}
}

// call is an answered call: bob called alice and her device answered.
type call struct {
	alice, bob *phone
	sess       *sipgo.DialogClientSession // bob's side
	ans        *sipgo.DialogServerSession // alice's side
	ctx        context.Context
}

// answeredCall registers alice and bob, has bob call alice and waits for
// her answer. Both sides are closed when the test ends.
func answeredCall(t *testing.T, e *env) *call {
	t.Helper()
	alice, bob := e.phone("alice").enableCalls(true), e.phone("bob").enableCalls(false)
	alice.register(600)
	bob.register(600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	sess, err := bob.call(ctx, "sip:alice@example.test")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	ans := wait(t, alice.calls.answered, "answer")
	t.Cleanup(func() { _ = ans.Close() })
	return &call{alice: alice, bob: bob, sess: sess, ans: ans, ctx: ctx}
}

// expectNone fails the test if anything arrives on ch within d.
func expectNone[T any](t *testing.T, ch chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: got %v", what, v)
	case <-time.After(d):
	}
}
