//go:build opus

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	srtpphone "github.com/parleyuc/parley/internal/phone"
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
	_, fe, _ := startPool(t, 2)
	a, b := fe[0], fe[1]
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
	alice := joinWebPeer(t, web, meeting, "alice", web.passwords["sip:alice@example.test"], 440)

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
		pcm := alice.heardCalls()
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
