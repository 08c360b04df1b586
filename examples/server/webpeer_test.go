//go:build opus

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/media"
	"github.com/parleyuc/parley/media/audio"
)

// webPeer is a WebRTC participant joined through a front end's signaling
// API, as the web client joins: it speaks a tone and keeps what it hears
// from the other participants' tracks and from the SIP callers' mix, and
// the rosters it is sent.
type webPeer struct {
	ws *websocket.Conn

	mu      sync.Mutex
	pcm     []int16  // the last 200 ms heard on others' audio tracks
	calls   []int16  // the last 200 ms of the SIP callers' mix (media.CallStream)
	roster  []string // names in the last roster message
	closed  error    // why the socket closed, once it has
	endedBy string   // the reason of an "ended" message
}

func (p *webPeer) heard() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pcm)
}

// heardCalls is what it heard of the SIP participants: the calls' track.
func (p *webPeer) heardCalls() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
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
		if tr.Kind() != webrtc.RTPCodecTypeAudio || tr.StreamID() == media.LobbyStream {
			return
		}
		buf := &p.pcm
		if tr.StreamID() == media.CallStream {
			buf = &p.calls
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
			*buf, _ = dec.Decode(*buf, pkt.Payload)
			*buf = (*buf)[max(0, len(*buf)-audio.Rate/5):]
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
