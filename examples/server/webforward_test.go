//go:build opus

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	srtpphone "github.com/parleyuc/parley/internal/phone"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/media"
	"github.com/parleyuc/parley/media/audio"
)

// webPeer is a WebRTC participant joined through a front end's signaling
// API, as the web client joins: it speaks a tone and keeps what it hears
// from the other participants' tracks, and the rosters it is sent.
type webPeer struct {
	ws *websocket.Conn

	mu      sync.Mutex
	pcm     []int16  // the last 200 ms heard on others' audio tracks
	roster  []string // names in the last roster message
	closed  error    // why the socket closed, once it has
	endedBy string   // the reason of an "ended" message
}

func (p *webPeer) heard() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pcm)
}

func (p *webPeer) names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.roster)
}

// joinWebPeer gets a ticket for meeting from s as user and joins with
// pion, speaking a tone of freq Hz.
func joinWebPeer(t *testing.T, s *server, meeting, user, password string, freq float64) *webPeer {
	t.Helper()
	res := digestDo(t, s.httpsClient(t), "POST", "https://"+s.listeners["https"]+"/api/meetings/"+meeting+"/ticket", user, password, []byte(`{}`))
	var tk struct{ Ticket, Error string }
	err := json.NewDecoder(res.Body).Decode(&tk)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s's ticket through %s: %s %s %v", user, s.listeners["https"], res.Status, tk.Error, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ws, _, err := websocket.Dial(ctx, "wss://"+s.listeners["https"]+"/api/signaling/socket?ticket="+tk.Ticket,
		&websocket.DialOptions{HTTPClient: s.httpsClient(t), HTTPHeader: http.Header{"Origin": {"https://" + s.listeners["https"]}}})
	if err != nil {
		t.Fatalf("%s's socket through %s: %v", user, s.listeners["https"], err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "camera")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	p := &webPeer{ws: ws}
	var wg sync.WaitGroup
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() != webrtc.RTPCodecTypeAudio || tr.StreamID() == media.CallStream || tr.StreamID() == media.LobbyStream {
			return
		}
		dec, err := audio.NewDecoder("opus")
		if err != nil {
			t.Error(err)
			return
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.pcm, _ = dec.Decode(p.pcm, pkt.Payload)
			p.pcm = p.pcm[max(0, len(p.pcm)-audio.Rate/5):]
			p.mu.Unlock()
		}
	})
	send := func(typ, sdp string) {
		b, _ := json.Marshal(map[string]string{"type": typ, "sdp": sdp})
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil && !errors.Is(err, context.Canceled) {
			t.Log("signaling:", err)
		}
	}
	localSDP := func(d webrtc.SessionDescription, err error) string {
		if err != nil {
			t.Error(err)
			return ""
		}
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(d); err != nil {
			t.Error(err)
			return ""
		}
		<-gathered
		return pc.LocalDescription().SDP
	}
	send("offer", localSDP(pc.CreateOffer(nil)))
	wg.Go(func() { // the signaling
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				p.mu.Lock()
				p.closed = err
				p.mu.Unlock()
				return
			}
			var msg struct {
				Type, SDP, Reason string
				Participants      []struct{ Name string }
			}
			if json.Unmarshal(b, &msg) != nil {
				continue
			}
			switch msg.Type {
			case "answer":
				_ = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: msg.SDP})
			case "offer":
				if pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: msg.SDP}) == nil {
					send("answer", localSDP(pc.CreateAnswer(nil)))
				}
			case "roster":
				var names []string
				for _, q := range msg.Participants {
					names = append(names, q.Name)
				}
				slices.Sort(names)
				p.mu.Lock()
				p.roster = names
				p.mu.Unlock()
			case "ended":
				p.mu.Lock()
				p.endedBy = msg.Reason
				p.mu.Unlock()
			}
		}
	})
	wg.Go(func() { // the microphone
		enc, err := audio.NewEncoder("opus")
		if err != nil {
			t.Error(err)
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var phase float64
		var seq uint16
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			payload, err := enc.Encode(nil, audio.Tone(nil, freq, 8000, audio.FrameSamples, &phase))
			if err != nil {
				return
			}
			seq++
			err = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 9}, Payload: payload})
			if err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		_ = ws.CloseNow()
		_ = pc.Close()
		wg.Wait()
	})
	return p
}

// TestWebJoinThroughAnotherFrontEnd: two front ends, each its own process,
// on one redis-server. Alice joins a meeting with WebRTC through A, which
// hosts it. Bob joins it with WebRTC through B, which does not: B relays
// his signaling to A over the pool's mutual TLS, so he is in A's roster
// (both see one roster of two, A counts two participants and B none) and
// the two hear each other's tones through A's media bridge. B counts one
// forwarded join. A browser cannot use the pool's ticket route itself.
func TestWebJoinThroughAnotherFrontEnd(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	b.passwords = a.passwords // printed once, by the first

	m := a.schedule(t, "alice", `{"subject":"Across","access":"organization"}`)
	alice := joinWebPeer(t, a, m.ID, "alice", a.passwords["sip:alice@example.test"], 440)
	var onA struct {
		Host string `json:"host"`
	}
	for deadline := time.Now().Add(5 * time.Second); onA.Host != a.listeners["pool"]; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("A does not host the meeting alice joined through it: host %q", onA.Host)
		}
		a.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onA)
	}
	bob := joinWebPeer(t, b, m.ID, "bob", b.passwords["sip:bob@example.test"], 700)

	want := []string{"Alice Liddell", "Bob Builder"}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(alice.names(), want) || !slices.Equal(bob.names(), want) {
		if time.Now().After(deadline) {
			bob.mu.Lock()
			why, ended := bob.closed, bob.endedBy
			bob.mu.Unlock()
			t.Fatalf("rosters: alice (through A) sees %v, bob (through B) sees %v; want %v on both (bob's socket: ended %q, closed %v)",
				alice.names(), bob.names(), want, ended, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pa, pb := metric(t, a, "parley_meeting_participants"), metric(t, b, "parley_meeting_participants"); pa != 2 || pb != 0 {
		t.Fatalf("parley_meeting_participants: A %v, B %v; want 2 on the host, 0 on B", pa, pb)
	}
	if fa, fb := metric(t, a, "parley_web_joins_forwarded_total"), metric(t, b, "parley_web_joins_forwarded_total"); fa != 0 || fb != 1 {
		t.Fatalf("parley_web_joins_forwarded_total: A %v, B %v; want 0, 1", fa, fb)
	}

	// Media between bob's pion and A's bridge, and through it to alice.
	hears := func(who string, p *webPeer, freq, other float64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			pcm := p.heard()
			if audio.RMS(pcm) > 1000 && srtpphone.Power(pcm, freq) > 20*srtpphone.Power(pcm, other) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not hear the %v Hz tone (rms %.0f)", who, freq, audio.RMS(pcm))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hears("bob, through B", bob, 440, 700)
	hears("alice, through A", alice, 700, 440)

	// The pool's ticket route takes no browser's word for an identity.
	res, err := b.httpsClient(t).Post("https://"+a.listeners["https"]+"/pool/meetings/"+m.ID+"/ticket", "application/json",
		strings.NewReader(`{"identity":{"URI":"sip:alice@example.test","Tenant":"example.test","Kind":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a ticket asked of the pool route without a pool certificate: %s; want 403", res.Status)
	}
}

// TestWebJoinRelayedWhenTheHostDies: bob's web join through B is relayed
// to A, the host. A is killed (-9): B closes bob's socket as "going away"
// with no "ended" message, which is the web client's cue to rejoin, and
// within the host lease's TTL a new ticket through B joins the meeting
// again, now hosted by B.
func TestWebJoinRelayedWhenTheHostDies(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a, killA := startServerProcess(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	b.passwords = a.passwords

	m := a.schedule(t, "alice", `{"access":"organization"}`)
	joinWebPeer(t, a, m.ID, "alice", a.passwords["sip:alice@example.test"], 440)
	bobPW := b.passwords["sip:bob@example.test"]
	bob := joinWebPeer(t, b, m.ID, "bob", bobPW, 700)
	for deadline := time.Now().Add(10 * time.Second); len(bob.names()) != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob, through B, sees %v", bob.names())
		}
	}

	killA()
	killed := time.Now()
	for {
		bob.mu.Lock()
		closed, ended := bob.closed, bob.endedBy
		bob.mu.Unlock()
		if closed != nil {
			if code := websocket.CloseStatus(closed); code != websocket.StatusGoingAway || ended != "" {
				t.Fatalf("bob's socket closed with %v (%v), ended %q; want going away and no ended message", code, closed, ended)
			}
			break
		}
		if time.Since(killed) > 3*time.Second {
			t.Fatal("bob's relayed socket is open 3 s after its host was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The web client's rejoin: a new ticket through B, until B may host.
	c := b.httpsClient(t)
	for {
		res := digestDo(t, c, "POST", "https://"+b.listeners["https"]+"/api/meetings/"+m.ID+"/ticket", "bob", bobPW, []byte(`{}`))
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Fatalf("bob's ticket through B while A's lease lapses: %s; want 503 with Retry-After", res.Status)
		}
		if time.Since(killed) > meetingLeaseTTL+5*time.Second {
			t.Fatalf("no ticket through B %v after A was killed", time.Since(killed))
		}
		time.Sleep(500 * time.Millisecond)
	}
	again := joinWebPeer(t, b, m.ID, "bob", bobPW, 700)
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(again.names(), []string{"Bob Builder"}); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob rejoined through B sees %v; want himself, B hosting", again.names())
		}
	}
	t.Logf("bob rejoined %v after A was killed", time.Since(killed))
}
