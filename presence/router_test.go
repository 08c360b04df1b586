package presence

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

func TestMessageReachesEveryDevice(t *testing.T) {
	e := newEnv(t)
	laptop, mobile, bob := e.phone("alice"), e.phone("alice"), e.phone("bob")
	laptop.register(600)
	mobile.register(600)
	bob.register(600)

	res := bob.message("sip:alice@example.test", "lunch?")
	if res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %d %s", res.StatusCode, res.Reason)
	}
	for _, dev := range []*phone{laptop, mobile} {
		m := dev.received(t)
		if string(m.Body()) != "lunch?" {
			t.Fatalf("body %q", m.Body())
		}
		pai := m.GetHeader("P-Asserted-Identity")
		if pai == nil || pai.Value() != "<sip:bob@example.test>" {
			t.Fatalf("P-Asserted-Identity %v, want bob's verified identity", pai)
		}
		if m.GetHeader("Authorization") != nil {
			t.Fatal("the sender's credentials were forwarded")
		}
		if mf := m.MaxForwards(); mf == nil || mf.Val() != 69 {
			t.Fatalf("Max-Forwards %v after one hop, want 69", mf)
		}
	}
}

func TestMessageAssertsVerifiedIdentityOnly(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	bob.register(600)
	req := bob.request("MESSAGE", "sip:alice@example.test")
	req.AppendHeader(sipHeader("P-Asserted-Identity", "<sip:ceo@example.test>"))
	if res := bob.do(req); res.StatusCode != 200 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	m := alice.received(t)
	if ps := m.GetHeaders("P-Asserted-Identity"); len(ps) != 1 || ps[0].Value() != "<sip:bob@example.test>" {
		t.Fatalf("P-Asserted-Identity %v, want only bob's", ps)
	}
}

func TestMessageToUnknownOrOfflineUser(t *testing.T) {
	e := newEnv(t)
	bob := e.phone("bob")
	bob.register(600)
	if res := bob.message("sip:nobody@example.test", "hi"); res.StatusCode != 404 {
		t.Fatalf("unknown user: %d, want 404", res.StatusCode)
	}
	if res := bob.message("sip:carol@example.test", "hi"); res.StatusCode != 480 {
		t.Fatalf("known user with no binding: %d, want 480", res.StatusCode)
	}
}

func TestMessageAfterDeviceHungUp(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.phone("alice"), e.phone("bob")
	alice.register(600)
	bob.register(600)
	bs, _ := e.registrar.Lookup(context.Background(), alice.aor())
	alice.hangUp()
	// Listen where alice's connection came from: the server must not dial
	// a binding's old address (RFC 5626), only use its connection.
	dialed := make(chan struct{}, 1)
	var ln net.Listener
	var err error
	// The port is free once the old socket has closed on both sides (the
	// server closes its side when the read fails; under load that takes
	// more than a second).
	for range 500 {
		if ln, err = net.Listen("tcp", bs[0].Source); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("cannot listen on alice's old address: %v", err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			dialed <- struct{}{}
		}
	}()
	if res := bob.message("sip:alice@example.test", "are you there?"); res.StatusCode != 480 {
		t.Fatalf("MESSAGE to a device whose flow is gone: %d, want 480", res.StatusCode)
	}
	select {
	case <-dialed:
		t.Fatal("the server dialed the binding's old address")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWebSocketClientRegistersAndReceives(t *testing.T) {
	e := newEnv(t)
	browser, bob := e.phone("alice").overWSS(), e.phone("bob")
	if res := browser.register(600); res.StatusCode != 200 {
		t.Fatalf("REGISTER over WSS: %d %s", res.StatusCode, res.Reason)
	}
	bs, _ := e.registrar.Lookup(context.Background(), browser.aor())
	if len(bs) != 1 || bs[0].Transport != "WSS" {
		t.Fatalf("bindings %+v, want one over WSS", bs)
	}
	// Later requests on the WebSocket ride its security association: no
	// challenge (the phone's Digest fallback is not used here).
	req := browser.request("MESSAGE", bob.aor(), sipHeader("Content-Type", "text/plain"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := browser.client.Do(ctx, req); err != nil || res.StatusCode != 480 {
		t.Fatalf("MESSAGE on the associated WebSocket to offline bob: %v %v, want 480 without a challenge", res, err)
	}
	bob.register(600)
	if res := bob.message(browser.aor(), "hello browser"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE to the browser: %d", res.StatusCode)
	}
	if m := browser.received(t); string(m.Body()) != "hello browser" {
		t.Fatalf("browser received %q", m.Body())
	}
}

// A sender cannot smuggle an identity, credentials or a route past the
// router with a second copy of a header or another case.
func TestForwardedRequestCarriesOnlyTheVerifiedIdentity(t *testing.T) {
	e := newEnv(t)
	alice := e.phone("alice")
	alice.register(600)
	c := dialRaw(t, e)
	signIn(t, c, "bob", "smuggle")
	msg := "MESSAGE sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKsmuggle1\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=smuggle\r\nTo: <sip:alice@example.test>\r\n" +
		"Call-ID: smuggle-1\r\nCSeq: 1 MESSAGE\r\n" +
		"P-Asserted-Identity: <sip:ceo@example.test>\r\np-asserted-identity: <sip:ceo2@example.test>\r\n" +
		"P-Preferred-Identity: <sip:ceo@example.test>\r\nauthorization: Bearer secret-token\r\n" +
		"Route: <sip:evil.example.test;lr>\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
	if code, _, err := c.roundTrip([]byte(msg)); err != nil || code != 200 {
		t.Fatalf("MESSAGE: %d %v", code, err)
	}
	m := alice.received(t)
	var pai []string
	for _, h := range m.Headers() {
		switch strings.ToLower(h.Name()) {
		case "p-asserted-identity":
			pai = append(pai, h.Value())
		case "p-preferred-identity", "authorization", "proxy-authorization", "route":
			t.Fatalf("forwarded request carries %s: %s", h.Name(), h.Value())
		}
	}
	if len(pai) != 1 || pai[0] != "<sip:bob@example.test>" {
		t.Fatalf("P-Asserted-Identity %q, want only bob's", pai)
	}
}

// TestReachableInAPool: a front end sends a MESSAGE to the devices
// connected to it, and once to each other front end holding the user's
// devices; a request another front end passed on, or a call, reaches the
// local devices only (no loops between front ends).
func TestReachableInAPool(t *testing.T) {
	rt := &Router{cfg: RouterConfig{Node: "10.0.0.1:5070"}}
	const aor = "sip:bob@example.test"
	bindings := []Binding{
		{AOR: aor, Contact: "sip:b1@x", Source: "192.0.2.1:1", Node: "10.0.0.1:5070"},
		{AOR: aor, Contact: "sip:b2@x", Source: "192.0.2.2:1", Node: "10.0.0.2:5070"},
		{AOR: aor, Contact: "sip:b3@x", Source: "192.0.2.3:1", Node: "10.0.0.2:5070"},
		{AOR: aor, Contact: "sip:b4@x", Source: "192.0.2.4:1", Node: "10.0.0.3:5070"},
		{AOR: aor, Contact: "sip:b5@x", Source: "192.0.2.5:1"}, // registered before the pool
	}
	describe := func(bs []Binding) string {
		var out []string
		for _, b := range bs {
			out = append(out, b.Contact+"@"+b.Source)
		}
		return strings.Join(out, " ")
	}
	user := &auth.Identity{URI: "sip:alice@example.test", Method: auth.MethodDigest}
	msg := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bob", Host: "example.test"})
	want := "sip:b1@x@192.0.2.1:1 " + aor + "@10.0.0.2:5070 " + aor + "@10.0.0.3:5070 sip:b5@x@192.0.2.5:1"
	if got := describe(rt.reachable(msg, user, aor, bindings)); got != want {
		t.Fatalf("a user's MESSAGE goes to %s\nwant %s", got, want)
	}
	local := "sip:b1@x@192.0.2.1:1 sip:b5@x@192.0.2.5:1"
	if got := describe(rt.reachable(msg, &auth.Identity{URI: user.URI, Method: auth.MethodPool}, aor, bindings)); got != local {
		t.Fatalf("a MESSAGE another front end passed on goes to %s, want %s", got, local)
	}
	invite := sip.NewRequest(sip.INVITE, msg.Recipient)
	if got := describe(rt.reachable(invite, user, aor, bindings)); got != local {
		t.Fatalf("a call goes to %s, want %s", got, local)
	}
}
