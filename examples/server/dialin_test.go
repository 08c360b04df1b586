package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/conference"
	srtpphone "github.com/parleyuc/parley/internal/phone"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

// scheduled is a meeting as the scheduling API returns it.
type scheduled struct {
	ID, Focus     string
	ConferenceKey string `json:"conference_key"`
	DialInID      string `json:"dial_in_id"`
}

// schedule has user schedule a meeting over HTTPS with the given JSON.
func (s *server) schedule(t testing.TB, user, body string) scheduled {
	t.Helper()
	res := digestDo(t, s.httpsClient(t), "POST", "https://"+s.listeners["https"]+"/api/meetings", user, s.passwords["sip:"+user+"@example.test"], []byte(body))
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("schedule: %s %s", res.Status, b)
	}
	var m scheduled
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func newTestPhone(t *testing.T) *srtpphone.Phone {
	t.Helper()
	ph, err := srtpphone.New(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ph.Close)
	return ph
}

// dominates waits until ph hears mostly freq among the candidates over
// 300 ms of the audio it receives: a tone, not a moment of a spoken
// prompt. It counts audio received, not polls: on a loaded machine the
// polls come slower than every 20 ms, and the IVR's beep lasts 400 ms
// (with the 200 ms a reading looks back, 600 ms in which it dominates).
func dominates(t *testing.T, ph *srtpphone.Phone, who string, freq float64, within time.Duration, candidates ...float64) {
	t.Helper()
	const tone = 15 // packets of 20 ms
	deadline := time.Now().Add(within)
	candidates = append(candidates, 300, 550, 850, 1200, 1500)
	for since := -1; ; {
		f, share := ph.Dominant(candidates...)
		_, n := ph.Heard()
		switch {
		case f != freq || share <= 0.9:
			since = -1
		case since < 0:
			since = n
		case n-since >= tone:
			return
		}
		if time.Now().After(deadline) {
			rms, n := ph.Heard()
			t.Fatalf("%s does not hear %v Hz (hears %v Hz, %.2f of the energy, rms %.0f, %d packets)", who, freq, f, share, rms, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDialInThroughTheIVR: a PSTN gateway (a SIP client with a client
// certificate from the CA, over mutual TLS) delivers a caller to the
// dial-in number with an SDES-SRTP offer. The IVR asks for the conference
// ID, which the caller enters with SIP INFO (dtmf-relay) and ends with #
// as an RFC 4733 telephone event; it asks for the caller's name, which the
// caller says (a 700 Hz tone) and ends with #. The caller waits in the
// lobby (the meeting sends dial-in callers there), alice, who joined from
// a SIP phone with SRTP, is told and admits it, and the two hear each
// other in the meeting's mix.
func TestDialInThroughTheIVR(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	m := s.schedule(t, "alice", `{"subject":"Dial-in","access":"organization","dial_in_lobby":true}`)

	// alice joins with audio, and watches the conference state.
	alicePhone := newTestPhone(t)
	alicePhone.Tone(440)
	alice := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	notifies := make(chan *sip.Request, 32)
	alice.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		notifies <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	invite := alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"),
		sip.NewHeader("Content-Type", "application/sdp"))
	invite.SetBody([]byte(alicePhone.Offer()))
	aliceIn, err := alice.do(invite)
	if err != nil || aliceIn.StatusCode != 200 {
		t.Fatalf("alice joins: %v %v", aliceIn, err)
	}
	if !strings.Contains(string(aliceIn.Body()), "RTP/SAVP") || !strings.Contains(string(aliceIn.Body()), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") {
		t.Fatalf("the focus's answer is not SDES-SRTP:\n%s", aliceIn.Body())
	}
	if err := alicePhone.Accept(string(aliceIn.Body())); err != nil {
		t.Fatal(err)
	}
	sub := alice.request(sip.SUBSCRIBE, m.Focus, sip.NewHeader("Event", "conference"), sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"))
	if res, err := alice.do(sub); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice subscribes: %v %v", res, err)
	}

	gw, _ := s.gateway(t, data)
	caller := newTestPhone(t)
	call := s.dialIn(demoGateway, "Caller 4321", caller.Offer())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered, err := gw.Do(ctx, call)
	if err != nil || answered.StatusCode != 200 {
		t.Fatalf("the dial-in number answers: %v %v", answered, err)
	}
	if err := caller.Accept(string(answered.Body())); err != nil {
		t.Fatal(err)
	}

	// "Please enter the conference ID": the caller keys it in over SIP
	// INFO, and ends it with # in its media.
	waitHears(t, caller, "the conference ID prompt", 300)
	key := func(body string) *sip.Response {
		info := inMeetingDialog(&sipUser{s: s}, call, answered, sip.INFO)
		info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
		info.SetBody([]byte(body))
		res, err := gw.Do(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := key("Signal=x\r\nDuration=160\r\n"); res.StatusCode != 400 {
		t.Fatalf("INFO with no key in it: %v", res)
	}
	for _, d := range m.DialInID {
		if res := key("Signal=" + string(d) + "\r\nDuration=160\r\n"); res.StatusCode != 200 {
			t.Fatalf("INFO dtmf-relay: %v", res)
		}
	}
	if err := caller.Digits("#"); err != nil {
		t.Fatal(err)
	}
	// "Say your name after the tone": the beep is 1 kHz.
	dominates(t, caller, "the caller", 1000, 15*time.Second, 440, 1000)
	caller.Tone(700)
	time.Sleep(1500 * time.Millisecond)
	if err := caller.Digits("#"); err != nil {
		t.Fatal(err)
	}

	// alice is told the caller waits in the lobby, and admits it.
	callerID := awaitLobby(t, notifies, "Caller 4321")
	admit := &conference.ControlRequest{ID: "1", Admit: &conference.Target{Participant: callerID}}
	info := inMeetingDialog(alice, invite, aliceIn, sip.INFO)
	info.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	info.SetBody(admit.Marshal())
	if res, err := alice.do(info); err != nil || res.StatusCode != 200 {
		t.Fatalf("admit: %v %v", res, err)
	}
	// In the meeting: each hears the other, not itself.
	dominates(t, caller, "the caller", 440, 15*time.Second, 440, 700, 1000)
	dominates(t, alicePhone, "alice", 700, 5*time.Second, 440, 700, 1000)
}

// waitHears waits until ph hears something louder than rms.
func waitHears(t *testing.T, ph *srtpphone.Phone, what string, rms float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, _ := ph.Heard(); r > rms {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s heard", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gateway is a SIP client with the demo gateway's client certificate,
// issued by the server's CA in data.
func (s *server) gateway(t *testing.T, data string) (*sipgo.Client, *sipgo.Server) {
	t.Helper()
	ca, err := pki.OpenCA(filepath.Join(data, "ca"), pki.CAConfig{CRLDistributionPoints: []string{"http://" + s.listeners["http"] + "/pki/ca.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	cert := testpki.KeyPair(t)(ca.IssueClient(pki.ClientCertRequest{SIPURI: demoGateway}))
	ua, _ := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(cert, s.verifier(t), "localhost")))
	gw, _ := sipgo.NewClient(ua)
	srv, _ := sipgo.NewServer(ua) // requests the server sends back over the connection
	t.Cleanup(func() { _ = gw.Close(); _ = ua.Close() })
	return gw, srv
}

// dialIn is an INVITE to the dial-in number from fromURI, the caller ID
// in its display name, with an SDP offer.
func (s *server) dialIn(fromURI, callerID, offer string) *sip.Request {
	var to, from sip.Uri
	_ = sip.ParseUri("sip:+15550100@example.test", &to)
	_ = sip.ParseUri(fromURI, &from) // a gateway speaks for its callers
	call := sip.NewRequest(sip.INVITE, to)
	fromParams := sip.NewParams()
	fromParams.Add("tag", sip.GenerateTagN(8))
	call.AppendHeader(&sip.FromHeader{DisplayName: callerID, Address: from, Params: fromParams})
	call.AppendHeader(&sip.ToHeader{Address: to})
	call.AppendHeader(sip.NewHeader("Contact", "<sip:gw@127.0.0.1;transport=tls>"))
	call.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	call.SetBody([]byte(offer))
	call.SetTransport("TLS")
	call.SetDestination(s.listeners["sip-tls"])
	return call
}

// Only the gateway reaches the dial-in number, and only with SRTP: a
// signed-in user gets 403 (and 488 for plain RTP to a meeting), the
// gateway's plain RTP 488 (it is not configured for plain RTP), and a
// wrong conference ID three times ends the call with a BYE.
func TestDialInRefusals(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	alice := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	if res, err := alice.do(s.dialIn("sip:alice@example.test", "", newTestPhone(t).Offer())); err != nil || res.StatusCode != 403 {
		t.Fatalf("alice calls the dial-in number: %v %v", res, err)
	}
	// A user's plain RTP offer to a meeting is refused too (488); with
	// SRTP she joins.
	m := s.schedule(t, "alice", `{"access":"organization"}`)
	plainOffer, err := srtpphone.New(true)
	if err != nil {
		t.Fatal(err)
	}
	defer plainOffer.Close()
	for _, c := range []struct {
		offer string
		want  int
	}{{plainOffer.Offer(), 488}, {newTestPhone(t).Offer(), 200}} {
		invite := alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"),
			sip.NewHeader("Content-Type", "application/sdp"))
		invite.SetBody([]byte(c.offer))
		if res, err := alice.do(invite); err != nil || res.StatusCode != c.want {
			t.Fatalf("alice joins with %d-answered media: %v %v", c.want, res, err)
		}
	}
	gw, gwSrv := s.gateway(t, data)
	byes := make(chan *sip.Request, 1)
	gwSrv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		byes <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain, err := srtpphone.New(true)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	res, err := gw.Do(ctx, s.dialIn(demoGateway, "Caller", plain.Offer()))
	if err != nil || res.StatusCode != 488 || !strings.Contains(res.String(), "plain RTP refused") {
		t.Fatalf("plain RTP from the gateway: %v %v", res, err)
	}

	caller := newTestPhone(t)
	res, err = gw.Do(ctx, s.dialIn(demoGateway, "Caller", caller.Offer()))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("the dial-in number answers: %v %v", res, err)
	}
	if err := caller.Accept(string(res.Body())); err != nil {
		t.Fatal(err)
	}
	if err := caller.Digits("12#34#56#"); err != nil { // typed ahead: no prompt waits for them
		t.Fatal(err)
	}
	select {
	case bye := <-byes:
		if !strings.Contains(bye.String(), "No such conference ID") {
			t.Fatalf("BYE without the reason:\n%s", bye)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("three wrong conference IDs did not end the call")
	}
}
