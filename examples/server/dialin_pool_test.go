package main

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestDialInThroughAnotherFrontEnd: two front ends of a pool, each its own
// process, on one redis-server. alice joins a meeting with audio through
// A, which hosts it. A gateway delivers a caller to the dial-in number at
// B, saying it takes REFER; B's IVR asks for the conference ID and, the
// meeting being hosted at A, transfers the caller: a REFER asks the
// gateway to call the meeting's focus URI, which it does through B, and B
// passes that INVITE (a dial-in caller's, with its SDES keys) on to A,
// whose bridge answers. The gateway hangs up the IVR's call; the caller
// and alice hear each other, and B's bridge carries neither call. A
// gateway that takes no REFER hears the refusal instead.
func TestDialInThroughAnotherFrontEnd(t *testing.T) {
	_, fe, _ := startPool(t, 2)
	a, b := fe[0], fe[1]
	m := a.schedule(t, "alice", `{"subject":"Dial-in across the pool","access":"organization","dial_in_lobby":false}`)

	alicePhone := newTestPhone(t)
	alicePhone.Tone(440)
	alice := a.sipUser(t, "alice", a.passwords["sip:alice@example.test"], "localhost")
	invite := alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"),
		sip.NewHeader("Content-Type", "application/sdp"))
	invite.SetBody([]byte(alicePhone.Offer()))
	aliceIn, err := alice.do(invite)
	if err != nil || aliceIn.StatusCode != 200 {
		t.Fatalf("alice joins through A: %v %v", aliceIn, err)
	}
	if err := alicePhone.Accept(string(aliceIn.Body())); err != nil {
		t.Fatal(err)
	}

	gw, gwSrv := b.gateway(t, a.data)
	refers := make(chan *sip.Request, 1)
	gwSrv.OnRefer(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
		refers <- req
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// dialToIVR calls the dial-in number at B and keys in the conference
	// ID; allow is the gateway's Allow header.
	dialToIVR := func(allow string) (*sip.Request, *sip.Response) {
		ivr := newTestPhone(t)
		call := b.dialIn(demoGateway, "Caller 4321", ivr.Offer())
		call.AppendHeader(sip.NewHeader("Allow", allow))
		answered, err := gw.Do(ctx, call)
		if err != nil || answered.StatusCode != 200 {
			t.Fatalf("the dial-in number at B answers: %v %v", answered, err)
		}
		if err := ivr.Accept(string(answered.Body())); err != nil {
			t.Fatal(err)
		}
		waitHears(t, ivr, "the conference ID prompt", 300)
		for _, d := range m.DialInID + "#" {
			info := inMeetingDialog(&sipUser{s: b}, call, answered, sip.INFO)
			info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
			info.SetBody([]byte("Signal=" + string(d) + "\r\nDuration=160\r\n"))
			if res, err := gw.Do(ctx, info); err != nil || res.StatusCode != 200 {
				t.Fatalf("INFO dtmf-relay: %v %v", res, err)
			}
		}
		return call, answered
	}

	call, answered := dialToIVR("INVITE, ACK, CANCEL, BYE, INFO, REFER, NOTIFY")
	var refer *sip.Request
	select {
	case refer = <-refers:
	case <-time.After(15 * time.Second):
		t.Fatal("B's IVR did not transfer the caller (no REFER)")
	}
	target := refer.GetHeader("Refer-To")
	if target == nil {
		t.Fatal("REFER without Refer-To")
	}
	var to sip.Uri
	if _, err := sip.ParseAddressValue(target.Value(), &to, nil); err != nil || to.User != m.ID {
		t.Fatalf("Refer-To %q; want the meeting %s", target.Value(), m.ID)
	}
	// The gateway calls the meeting, through B, with the caller's media.
	caller := newTestPhone(t)
	caller.Tone(700)
	joinCall := b.dialIn(demoGateway, "Caller 4321", caller.Offer())
	joinCall.Recipient = to
	joinCall.ReplaceHeader(&sip.ToHeader{Address: to})
	joined, err := gw.Do(ctx, joinCall)
	if err != nil || joined.StatusCode != 200 {
		t.Fatalf("the gateway's call to the meeting through B: %v %v", joined, err)
	}
	if err := gw.WriteRequest(inMeetingDialog(&sipUser{s: b}, joinCall, joined, sip.ACK)); err != nil {
		t.Fatal(err)
	}
	if err := caller.Accept(string(joined.Body())); err != nil {
		t.Fatal(err)
	}
	if res, err := gw.Do(ctx, inMeetingDialog(&sipUser{s: b}, call, answered, sip.BYE)); err != nil || res.StatusCode != 200 {
		t.Fatalf("the gateway hangs up the IVR's call: %v %v", res, err)
	}
	dominates(t, caller, "the caller", 440, 15*time.Second, 440, 700)
	dominates(t, alicePhone, "alice", 700, 5*time.Second, 440, 700)
	if n := metric(t, b, "parley_media_calls"); n != 0 {
		t.Fatalf("B's bridge carries %v calls; want none", n)
	}
	if n := metric(t, a, "parley_meeting_participants"); n != 2 {
		t.Fatalf("A's meeting has %v participants; want alice and the caller", n)
	}

	// A gateway that takes no REFER: the caller is told it cannot join,
	// and the IVR hangs up.
	byes := make(chan struct{}, 1)
	gwSrv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		byes <- struct{}{}
	})
	dialToIVR("INVITE, ACK, CANCEL, BYE, INFO")
	select {
	case <-byes:
	case <-refers:
		t.Fatal("a REFER to a gateway that does not take it")
	case <-time.After(20 * time.Second):
		t.Fatal("the IVR did not hang up on a caller it cannot transfer")
	}
}
