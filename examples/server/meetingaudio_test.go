//go:build opus

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	srtpphone "github.com/parleyuc/parley/internal/phone"
	"github.com/parleyuc/parley/media"
	"github.com/parleyuc/parley/internal/testredis"
	"github.com/parleyuc/parley/media/audio"
)

// TestBaresipInAMeetingWithWebRTC: a real SIP client, baresip, with SRTP
// mandatory (SDES keys in its SDP, over TLS) and its microphone a 700 Hz
// tone from a WAV file, joins a meeting's focus. A WebRTC participant
// (pion, through the server's signaling API, as a browser joins) speaks a
// 440 Hz tone in Opus. The WebRTC participant hears baresip's tone in the
// calls' track, and baresip's recording of what it heard holds the WebRTC
// participant's tone.
func TestBaresipInAMeetingWithWebRTC(t *testing.T) {
	s := startServer(t, t.TempDir())
	m := s.schedule(t, "alice", `{"subject":"Interop","access":"organization"}`)
	webAndBaresipHearEachOther(t, s, s, m.ID, m.Focus)
}

// TestMediaAcrossFrontEnds: two front ends of a pool, each its own
// process, on one redis-server. alice joins a meeting in WebRTC through A,
// which hosts it; bob's baresip calls the meeting's focus through B, which
// passes the INVITE (and its SDES keys, over the pool's mutual TLS) on to
// A: A's bridge answers, and each hears the other.
func TestMediaAcrossFrontEnds(t *testing.T) {
	rds := testredis.Run(t)
	data := t.TempDir()
	pool := []string{"-store", "redis", "-redis", rds.URL}
	a, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.1:0")...)
	b, _ := startServerProcess(t, data, append(pool, "-pool", "127.0.0.2:0", "-sip-tls", "127.0.0.2:0")...)
	b.passwords = a.passwords // printed once, by the first
	m := a.schedule(t, "alice", `{"subject":"Interop across the pool","access":"organization"}`)
	webAndBaresipHearEachOther(t, a, b, m.ID, m.Focus)
	if n := metric(t, b, "parley_meeting_requests_forwarded_total"); n < 1 {
		t.Fatalf("B passed on %v requests; want baresip's INVITE", n)
	}
	if n := metric(t, b, "parley_media_calls"); n != 0 {
		t.Fatalf("B's bridge has %v calls; want none: the host's bridge answers", n)
	}
}

// webAndBaresipHearEachOther: alice joins meeting in WebRTC through web,
// then bob's baresip calls focus through sip; each hears the other's tone.
func webAndBaresipHearEachOther(t *testing.T, web, sip *server, meeting, focus string) {
	t.Helper()
	// alice, in WebRTC, joins first.
	alice := joinWebRTC(t, web, meeting, "alice", 440)

	dir := t.TempDir()
	var phase float64
	tone := audio.Tone(nil, 700, 8000, 60*audio.Rate, &phase)
	mic := filepath.Join(dir, "mic.wav")
	if err := os.WriteFile(mic, audio.WriteWAV(tone, audio.Rate), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "rec")
	if err := os.Mkdir(rec, 0o700); err != nil {
		t.Fatal(err)
	}
	b := startBaresipAccount(t, sip, "bob", sip.listeners["sip-tls"], ";mediaenc=srtp-mand;audio_codecs=PCMU",
		"module g711.so", "module srtp.so", "module aufile.so", "module sndfile.so",
		"audio_source aufile,"+mic, "ausrc_srate 8000", "auplay_srate 8000", "snd_path "+rec)
	b.Command(t, "/dial "+focus)
	// With mediaenc=srtp-mand, baresip takes no answer without SDES keys.
	b.Out.WaitFor(t, "Call established", 15*time.Second)

	// The browser hears baresip.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pcm := alice.heard()
		if audio.RMS(pcm) > 1000 && srtpphone.Power(pcm, 700) > 20*srtpphone.Power(pcm, 440) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WebRTC participant does not hear baresip (rms %.0f)\nbaresip:\n%s", audio.RMS(pcm), b.Out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// baresip hears the browser: its recording of the call, once it hangs
	// up.
	time.Sleep(2 * time.Second)
	b.Command(t, "/hangup")
	b.Out.WaitFor(t, "terminated", 10*time.Second)
	heard := recording(t, rec)
	last := heard[len(heard)-audio.Rate:]
	if audio.RMS(last) < 1000 || srtpphone.Power(last, 440) < 20*srtpphone.Power(last, 700) {
		t.Fatalf("baresip heard rms %.0f, 440 Hz %.3g, its own 700 Hz %.3g: not the WebRTC participant", audio.RMS(last),
			srtpphone.Power(last, 440), srtpphone.Power(last, 700))
	}
}

// webParticipant is a WebRTC participant in a meeting, joined through the
// server's signaling API as the web client does.
type webParticipant struct {
	mu  sync.Mutex
	pcm []int16 // the last 200 ms of the calls' track, decoded
}

func (w *webParticipant) heard() []int16 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int16(nil), w.pcm...)
}

// joinWebRTC signs user in over HTTPS, gets a signaling ticket for the
// meeting, and joins it with pion, speaking a tone of freq Hz in Opus.
func joinWebRTC(t *testing.T, s *server, meeting, user string, freq float64) *webParticipant {
	t.Helper()
	res := digestDo(t, s.httpsClient(t), "POST", "https://"+s.listeners["https"]+"/api/meetings/"+meeting+"/ticket", user,
		s.passwords["sip:"+user+"@example.test"], []byte(`{}`))
	var tk struct{ Ticket string }
	err := json.NewDecoder(res.Body).Decode(&tk)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("ticket: %s %v", res.Status, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ws, _, err := websocket.Dial(ctx, "wss://"+s.listeners["https"]+"/api/signaling/socket?ticket="+tk.Ticket,
		&websocket.DialOptions{HTTPClient: s.httpsClient(t), HTTPHeader: http.Header{"Origin": {"https://" + s.listeners["https"]}}})
	if err != nil {
		t.Fatal(err)
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
	w := &webParticipant{}
	var wg sync.WaitGroup
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.StreamID() != media.CallStream {
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
			w.mu.Lock()
			w.pcm, _ = dec.Decode(w.pcm, pkt.Payload)
			w.pcm = w.pcm[max(0, len(w.pcm)-audio.Rate/5):]
			w.mu.Unlock()
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
	wg.Go(func() { // the signaling: the answer, and the bridge's offers
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var msg struct{ Type, SDP string }
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
	return w
}
