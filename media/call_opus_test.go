//go:build opus

package media

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parleyuc/parley/internal/phone"
	"github.com/parleyuc/parley/media/audio"
)

// A SIP caller and a WebRTC participant hear each other: the caller's
// audio reaches the browser in Opus on the calls' track, and the
// browser's Opus is decoded into the caller's mix.
func TestCallAndWebRTCHearEachOther(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	dec, err := audio.NewDecoder(codecOpus)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var heard []int16
	web := e.join(e.enter("alice"), clientOptions{publish: []string{KindAudio}, noSend: true,
		onRTP: func(key string, pkt *rtp.Packet) {
			if key != CallStream+"/calls-audio" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			heard, _ = dec.Decode(heard, pkt.Payload)
			heard = heard[max(0, len(heard)-audio.Rate/5):]
		}})
	// The browser speaks at 1 kHz.
	enc, err := audio.NewEncoder(codecOpus)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var phase float64
		var seq uint16
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pcm := audio.Tone(nil, 1000, 8000, audio.FrameSamples, &phase)
			payload, err := enc.Encode(nil, pcm)
			if err != nil {
				t.Error(err)
				return
			}
			seq++
			_ = web.locals[0].WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 7}, Payload: payload})
		}
	})
	defer func() { close(stop); wg.Wait() }()

	ph := newPhone(t, false)
	ph.Tone(440)
	e.dial("bob", ph)
	hears(t, ph, "the caller", 1000, 440, 1000)
	eventually(t, 5*time.Second, "the browser hears the caller", func() bool {
		mu.Lock()
		pcm := append([]int16(nil), heard...)
		mu.Unlock()
		p440, p1k := phone.Power(pcm, 440), phone.Power(pcm, 1000)
		return audio.RMS(pcm) > 1000 && p440 > 20*p1k
	})
}
