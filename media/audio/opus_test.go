//go:build opus

package audio

import (
	"testing"
)

func TestOpusRoundTrip(t *testing.T) {
	if !OpusBuilt {
		t.Fatal("OpusBuilt is false in a build with the opus tag")
	}
	enc, err := NewEncoder("OPUS")
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder("opus")
	if err != nil {
		t.Fatal(err)
	}
	var phase float64
	var in, out []int16
	var frame []int16
	var payload []byte
	for i := range 50 {
		frame = Tone(frame[:0], 440, 10000, FrameSamples, &phase)
		payload, err = enc.Encode(payload[:0], frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(payload) == 0 || len(payload) > 200 {
			t.Fatalf("frame %d: %d bytes of Opus for 20 ms", i, len(payload))
		}
		n := len(out)
		out, err = dec.Decode(out, payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(out)-n != FrameSamples {
			t.Fatalf("frame %d decoded to %d samples, want %d", i, len(out)-n, FrameSamples)
		}
		in = append(in, frame...)
	}
	// Past the codec's start-up, the energy of the tone comes through.
	rin, rout := RMS(in[10*FrameSamples:]), RMS(out[10*FrameSamples:])
	if rout < rin/2 || rout > rin*2 {
		t.Errorf("RMS of the tone %.0f, decoded %.0f: not within a factor of 2", rin, rout)
	}

	// libopus conceals a lost frame by carrying on the tone, fading.
	if r := RMS(dec.Conceal(nil, FrameSamples)); r < rin/4 {
		t.Errorf("RMS of the frame concealed after the tone: %.0f, want it near %.0f", r, rin)
	}
	for _, n := range []int{FrameSamples, 50, 3 * FrameSamples, 0} {
		got := dec.Conceal([]int16{1, 2}, n)
		if len(got) != 2+n || got[0] != 1 || got[1] != 2 {
			t.Errorf("Conceal(%d) appended %d samples", n, len(got)-2)
		}
	}

	// A 60 ms frame is one payload, decoded whole.
	long := Tone(nil, 440, 10000, 3*FrameSamples, &phase)
	payload, err = enc.Encode(nil, long)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dec.Decode(nil, payload)
	if err != nil || len(got) != 3*FrameSamples {
		t.Errorf("60 ms payload decoded to %d samples, %v", len(got), err)
	}

	if _, err := enc.Encode(nil, make([]int16, 100)); err == nil {
		t.Error("Encode of 12.5 ms (not an Opus frame size) succeeded")
	}
	if _, err := dec.Decode(nil, nil); err == nil {
		t.Error("Decode of an empty payload succeeded")
	}
	if _, err := dec.Decode(nil, []byte{0xFF, 0xFF, 0xFF}); err == nil {
		t.Error("Decode of garbage succeeded")
	}
}
