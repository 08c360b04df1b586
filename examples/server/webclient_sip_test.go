//go:build opus

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyuc/parley/media/audio"
)

// With Opus, the bridge encodes the SIP callers' mix for browsers, and
// TestWebClient has a SIP caller for a browser to hear.
func init() {
	// baresip (bob, a 700 Hz tone for a microphone) calls the meeting's
	// focus; alice, in the browser, lists him by name and hears him, and
	// still hears him after a guest arrives in the lobby and is admitted.
	// (The callers' mix played on a tile that the roster's next change
	// removed.)
	webScenarios = append(webScenarios, webScenario{name: "HearsSIPCallerAfterRosterChanges", scenario: "sip-audio", hooks: baresipCaller})
}

// baresipCaller has baresip call the meeting with a tone for a microphone.
func baresipCaller(t *testing.T, bm *browserMeeting) map[string]func() {
	dir := t.TempDir()
	var phase float64
	mic := filepath.Join(dir, "mic.wav")
	if err := os.WriteFile(mic, audio.WriteWAV(audio.Tone(nil, 700, 8000, 60*audio.Rate, &phase), audio.Rate), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBaresipAccount(t, bm.s, "bob", bm.s.listeners["sip-tls"], ";mediaenc=srtp-mand;audio_codecs=PCMU",
		"module g711.so", "module srtp.so", "module aufile.so", "audio_source aufile,"+mic, "ausrc_srate 8000",
		"audio_player aufile,/dev/null", "auplay_srate 8000")
	b.Command(t, "/dial "+bm.m.Focus)
	b.Out.WaitFor(t, "Call established", 15*time.Second)
	return nil
}
