package synth

import (
	"testing"
	"time"
)

// The publisher's frames of one layer, decoded: every frame while none
// is lost; after a lost packet nothing until a keyframe, which the
// decoder asks for once stuck, and the gap counted as a freeze. Audio
// lost in a row is measured by the timestamps.
func TestDecoderDecodesTheSynthesizedLayer(t *testing.T) {
	v := NewVideo([Layers]int{270, 600, 1100}, [Layers]int{20 * 2 * 270, 20 * 2 * 600, 20 * 2 * 1100})
	a := NewAudio(60)
	d := NewDecoder()
	t0 := time.Unix(1000, 0)
	at := func(frame int) time.Time { return t0.Add(time.Duration(frame) * FrameInterval) }
	const high = Layers - 1
	requested := false
	for f := range 60 {
		now := at(f)
		frame := v.Next(now)[high]
		if f == 0 && len(frame) != 40 {
			t.Fatalf("the first frame is %d packets, want a camera-sized keyframe of 40", len(frame))
		}
		for i, pkt := range frame {
			if f == 10 && i == 1 {
				continue // lost
			}
			pkt.SSRC = 42 // the sender's
			d.Video(pkt, now)
		}
		if f%3 != 2 { // audio: a packet every 20 ms (two per frame, roughly), the 7th lost
			p := a.Next(now)
			if a.Packets(t0) != 7 {
				d.Audio(p, now)
			}
		}
		if ssrc, stuck := d.Stuck(now); stuck && !requested {
			if ssrc != 42 {
				t.Fatalf("Stuck gave SSRC %d, want the packets' (42)", ssrc)
			}
			requested = true
			v.RequestKeyframe(high)
		}
	}
	if !requested {
		t.Fatal("the decoder, stuck after a lost packet, never asked for a keyframe")
	}
	r := d.Report(at(60), 60*FrameInterval)
	// Frames 0 to 9 decoded; 10 to the one after the request not; then
	// every frame from the keyframe on.
	if r.Keyframes != 2 || r.Width != int(Widths[high]) {
		t.Errorf("decoded %d keyframes of width %d, want 2 of %d", r.Keyframes, r.Width, Widths[high])
	}
	if r.Frames < 35 || r.Frames > 45 || r.FramesByLayer[RIDs[high]] != r.Frames {
		t.Errorf("decoded %d frames (%v), want 35 to 45, all of layer %q", r.Frames, r.FramesByLayer, RIDs[high])
	}
	if r.Freezes != 1 || r.LongestFreezeMS < 500 || r.LongestFreezeMS > 800 {
		t.Errorf("%d freezes, longest %d ms; want one of 500 to 800 ms", r.Freezes, r.LongestFreezeMS)
	}
	if r.KeyframeRequests != 1 {
		t.Errorf("%d keyframe requests counted, want 1", r.KeyframeRequests)
	}
	if r.VideoMissing != 1 {
		t.Errorf("%d video packets never received, want 1", r.VideoMissing)
	}
	if r.LongestAudioLossMS != 20 {
		t.Errorf("longest audio lost %d ms, want 20 (one packet)", r.LongestAudioLossMS)
	}
	if got := PublisherReport(v, a, at(60), 60*FrameInterval); got.Frames != 60 {
		t.Errorf("the publisher reports %d frames sent, want 60", got.Frames)
	}
}
