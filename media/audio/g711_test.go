package audio

import (
	"errors"
	"math"
	"testing"
)

func TestG711Vectors(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"MulawEncode(0)", int(MulawEncode(0)), 0xFF},
		{"MulawDecode(0xFF)", int(MulawDecode(0xFF)), 0},
		{"MulawDecode(0x7F)", int(MulawDecode(0x7F)), 0},
		{"MulawDecode(0x80)", int(MulawDecode(0x80)), 32124},
		{"MulawDecode(0x00)", int(MulawDecode(0x00)), -32124},
		{"MulawEncode(32767)", int(MulawEncode(32767)), 0x80},
		{"MulawEncode(-32768)", int(MulawEncode(-32768)), 0x00},
		{"AlawEncode(0)", int(AlawEncode(0)), 0xD5},
		{"AlawDecode(0xD5)", int(AlawDecode(0xD5)), 8},
		{"AlawDecode(0x55)", int(AlawDecode(0x55)), -8},
		{"AlawDecode(0xAA)", int(AlawDecode(0xAA)), 32256},
		{"AlawDecode(0x2A)", int(AlawDecode(0x2A)), -32256},
		{"AlawEncode(32767)", int(AlawEncode(32767)), 0xAA},
		{"AlawEncode(-32768)", int(AlawEncode(-32768)), 0x2A},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// TestG711RoundTrip checks every 16-bit sample: decoding its code word
// gives it back within half a step of its segment (the decoders return
// the middle of the interval), and the code is monotonic in the sample.
func TestG711RoundTrip(t *testing.T) {
	prevMu, prevA := math.MinInt, math.MinInt
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		s := int16(x)

		mu := MulawEncode(s)
		y := int(MulawDecode(mu))
		exp := (^mu >> 4) & 7
		bound := 4 << exp // half of the step 8<<exp
		if ax := abs(x); ax > mulawClip {
			bound = ax - 32124 // clipped: decodes to the extreme
		}
		if abs(y-x) > bound {
			t.Fatalf("μ-law: %d → %#x → %d, error over %d", x, mu, y, bound)
		}
		if y < prevMu {
			t.Fatalf("μ-law: %d decodes to %d, below %d for the sample before", x, y, prevMu)
		}
		prevMu = y

		a := AlawEncode(s)
		y = int(AlawDecode(a))
		seg := ((a ^ 0x55) >> 4) & 7
		bound = 4 << max(seg, 1) // steps are 16 in segments 0 and 1, 8<<seg above
		if abs(y-x) > bound {
			t.Fatalf("A-law: %d → %#x → %d, error over %d", x, a, y, bound)
		}
		if y < prevA {
			t.Fatalf("A-law: %d decodes to %d, below %d for the sample before", x, y, prevA)
		}
		prevA = y
	}
}

// TestG711CodesRoundTrip checks that every code word decodes to a sample
// that encodes back to it (but for μ-law's negative zero, 0x7F, which
// comes back as positive zero).
func TestG711CodesRoundTrip(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if got := MulawEncode(MulawDecode(b)); got != b && b != 0x7F {
			t.Errorf("μ-law %#x → %d → %#x", b, MulawDecode(b), got)
		}
		if got := AlawEncode(AlawDecode(b)); got != b {
			t.Errorf("A-law %#x → %d → %#x", b, AlawDecode(b), got)
		}
	}
}

func TestG711Codecs(t *testing.T) {
	frame := Tone(nil, 440, 10000, FrameSamples, nil)
	for _, name := range []string{"PCMU", "pcma", "Pcmu"} {
		enc, err := NewEncoder(name)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewDecoder(name)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := enc.Encode([]byte{0xEE}, frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(payload) != 1+FrameSamples || payload[0] != 0xEE {
			t.Fatalf("%s: Encode appended %d bytes to 1 (first %#x), want %d", name, len(payload), payload[0], FrameSamples)
		}
		pcm, err := dec.Decode([]int16{7}, payload[1:])
		if err != nil {
			t.Fatal(err)
		}
		if len(pcm) != 1+FrameSamples || pcm[0] != 7 {
			t.Fatalf("%s: Decode appended %d samples, want %d", name, len(pcm)-1, FrameSamples)
		}
		for i, s := range pcm[1:] {
			if abs(int(s)-int(frame[i])) > 512 {
				t.Fatalf("%s: sample %d: %d came back as %d", name, i, frame[i], s)
			}
		}
	}
	for _, name := range []string{"G722", "", "opus2"} {
		if _, err := NewEncoder(name); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("NewEncoder(%q) = %v, want ErrUnknownCodec", name, err)
		}
		if _, err := NewDecoder(name); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("NewDecoder(%q) = %v, want ErrUnknownCodec", name, err)
		}
	}
}

// TestG711Conceal checks the concealment of lost G.711 packets: the last
// frame repeated for 20 ms, fading out until 60 ms, silence after.
func TestG711Conceal(t *testing.T) {
	dec, _ := NewDecoder("PCMU")
	if got := dec.Conceal(nil, 10); len(got) != 10 || RMS(got) != 0 {
		t.Fatalf("Conceal before any packet = %v, want 10 zeros", got)
	}
	enc, _ := NewEncoder("PCMU")
	payload, _ := enc.Encode(nil, Tone(nil, 400, 8000, FrameSamples, nil))
	heard, _ := dec.Decode(nil, payload)

	got := dec.Conceal(nil, 4*FrameSamples)
	if len(got) != 4*FrameSamples {
		t.Fatalf("Conceal(%d) appended %d samples", 4*FrameSamples, len(got))
	}
	for i := range FrameSamples {
		if got[i] != heard[i] {
			t.Fatalf("first 20 ms of concealment: sample %d = %d, want the last frame's %d", i, got[i], heard[i])
		}
	}
	r2, r3 := RMS(got[FrameSamples:2*FrameSamples]), RMS(got[2*FrameSamples:3*FrameSamples])
	if r := RMS(heard); !(r > r2 && r2 > r3 && r3 > 0) {
		t.Errorf("RMS of frames concealed: %.0f, then %.0f, %.0f: not fading", r, r2, r3)
	}
	if r := RMS(got[3*FrameSamples:]); r != 0 {
		t.Errorf("concealment after 60 ms has RMS %.1f, want silence", r)
	}
	// Split calls continue the fade where it was.
	more := dec.Conceal(nil, 5)
	if RMS(more) != 0 {
		t.Errorf("concealment continued after 80 ms is %v, want silence", more)
	}
	// A packet ends the gap: the next one is concealed from the start.
	heard, _ = dec.Decode(nil, payload)
	if got := dec.Conceal(nil, 3); got[0] != heard[0] || got[2] != heard[2] {
		t.Errorf("concealment after a new packet = %v, want the start of %v", got, heard[:3])
	}
}

// TestG711ConcealShortPackets checks that the frame repeated is the last
// 20 ms decoded, even from packets shorter than 20 ms.
func TestG711ConcealShortPackets(t *testing.T) {
	dec, _ := NewDecoder("PCMA")
	enc, _ := NewEncoder("PCMA")
	var phase float64
	var heard []int16
	for range 5 {
		payload, _ := enc.Encode(nil, Tone(nil, 300, 5000, 70, &phase))
		heard, _ = dec.Decode(heard, payload)
	}
	got := dec.Conceal(nil, FrameSamples)
	want := heard[len(heard)-FrameSamples:]
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("sample %d concealed = %d, want %d", i, got[i], want[i])
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
