package audio

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// tones returns one frame per frequency: a tone of that frequency and
// the given amplitude.
func tones(amplitude int16, freqs ...float64) [][]int16 {
	in := make([][]int16, len(freqs))
	for i, f := range freqs {
		in[i] = Tone(nil, f, amplitude, FrameSamples, nil)
	}
	return in
}

func outputs(n int) [][]int16 {
	out := make([][]int16, n)
	for i := range out {
		out[i] = make([]int16, FrameSamples)
	}
	return out
}

// sum adds frames sample by sample, in int (no saturation).
func sum(frames ...[]int16) []int {
	s := make([]int, FrameSamples)
	for _, f := range frames {
		for k, x := range f {
			s[k] += int(x)
		}
	}
	return s
}

func equal(t *testing.T, what string, got []int16, want []int) {
	t.Helper()
	for k := range want {
		if int(got[k]) != want[k] {
			t.Fatalf("%s: sample %d = %d, want %d", what, k, got[k], want[k])
		}
	}
}

// correlation is the normalized cross-correlation of two frames.
func correlation(a, b []int16) float64 {
	var ab, aa, bb float64
	for k := range a {
		ab += float64(a[k]) * float64(b[k])
		aa += float64(a[k]) * float64(a[k])
		bb += float64(b[k]) * float64(b[k])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestMixMinusOneExcludesOwnVoice(t *testing.T) {
	// 400, 800 and 1200 Hz: whole periods in 20 ms, so orthogonal.
	in := tones(8000, 400, 800, 1200)
	out := outputs(3)
	NewMixer().MixMinusOne(out, in)
	equal(t, "out[0]", out[0], sum(in[1], in[2]))
	equal(t, "out[1]", out[1], sum(in[0], in[2]))
	equal(t, "out[2]", out[2], sum(in[0], in[1]))
	for i := range in {
		if c := correlation(out[i], in[i]); math.Abs(c) > 0.01 {
			t.Errorf("listener %d hears its own voice: correlation %.3f", i, c)
		}
		for j := range in {
			if c := correlation(out[i], in[j]); j != i && c < 0.5 {
				t.Errorf("listener %d does not hear source %d: correlation %.3f", i, j, c)
			}
		}
	}

	all := make([]int16, FrameSamples)
	NewMixer().Mix(all, in)
	equal(t, "Mix", all, sum(in...))
}

func TestMixClipping(t *testing.T) {
	in := tones(30000, 500, 500, 500) // in phase: sums up to ±90000
	out := outputs(3)
	var m Mixer
	m.MixMinusOne(out, in)
	all := make([]int16, FrameSamples)
	m.Mix(all, in)

	clipped := 0
	check := func(what string, got []int16, want []int) {
		for k, w := range want {
			x := min(max(w, math.MinInt16), math.MaxInt16)
			if int(got[k]) != x {
				t.Fatalf("%s: sample %d = %d, want %d (%d saturated)", what, k, got[k], x, w)
			}
			if x != w {
				clipped++
			}
		}
	}
	check("out[0]", out[0], sum(in[1], in[2]))
	check("out[2]", out[2], sum(in[0], in[1]))
	check("Mix", all, sum(in...))
	if clipped == 0 {
		t.Fatal("nothing clipped: the test is not testing saturation")
	}
	if !slices.Contains(all, math.MaxInt16) || !slices.Contains(all, math.MinInt16) {
		t.Error("saturation does not reach both 32767 and -32768")
	}

	// Extremes: DC at full scale, positive and negative.
	hi, lo := make([]int16, FrameSamples), make([]int16, FrameSamples)
	for k := range hi {
		hi[k], lo[k] = math.MaxInt16, math.MinInt16
	}
	m.Mix(all, [][]int16{hi, hi, hi, hi})
	m.MixMinusOne(out[:2], [][]int16{lo, lo})
	if all[0] != math.MaxInt16 || out[0][0] != math.MinInt16 || out[1][FrameSamples-1] != math.MinInt16 {
		t.Errorf("full scale mixes to %d and %d, want 32767 and -32768", all[0], out[0][0])
	}
}

func TestMixSilentSourceAddsNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	noise := make([]int16, FrameSamples)
	for k := range noise {
		noise[k] = int16(r.IntN(11) - 5) // faint line noise, ±5
	}
	if RMS(noise) >= SilenceThreshold {
		t.Fatalf("noise RMS %.1f is not under the threshold", RMS(noise))
	}
	in := append(tones(3000, 400, 800), noise)
	out := outputs(3)
	NewMixer().MixMinusOne(out, in)
	equal(t, "out[0]", out[0], sum(in[1]))
	equal(t, "out[1]", out[1], sum(in[0]))
	equal(t, "out[2]", out[2], sum(in[0], in[1]))

	// Just over the threshold, a source is mixed.
	loud := make([]int16, FrameSamples)
	for k := range loud {
		loud[k] = SilenceThreshold
	}
	in[2] = loud
	NewMixer().MixMinusOne(out, in)
	equal(t, "out[0] with a source at the threshold", out[0], sum(in[1], in[2]))
}

func TestMixMaxSpeakers(t *testing.T) {
	// Five talkers, source i at amplitude 1000·(i+1), in shuffled order.
	amps := []int16{3000, 1000, 5000, 2000, 4000}
	in := make([][]int16, len(amps))
	for i, a := range amps {
		in[i] = Tone(nil, 400*float64(i+1), a, FrameSamples, nil)
	}
	out := outputs(len(in))
	var m Mixer
	m.MixMinusOne(out, in)
	// The quietest (source 1, 1000) is left out of every mix.
	equal(t, "quietest listener", out[1], sum(in[0], in[2], in[3], in[4]))
	equal(t, "loudest listener", out[2], sum(in[0], in[3], in[4]))
	equal(t, "listener 3", out[3], sum(in[0], in[2], in[4]))
	all := make([]int16, FrameSamples)
	m.Mix(all, in)
	equal(t, "Mix", all, sum(in[0], in[2], in[3], in[4]))

	// Many quiet sources and loud ones at the end.
	in = make([][]int16, 20)
	for i := range in {
		a := int16(200)
		if i >= 16 {
			a = 5000
		}
		in[i] = Tone(nil, 100*float64(i+1), a, FrameSamples, nil)
	}
	m.Mix(all, in)
	equal(t, "Mix of 20", all, sum(in[16:]...))
}

func TestMixNilAndShort(t *testing.T) {
	tone := Tone(nil, 400, 3000, FrameSamples, nil)
	short := tone[:FrameSamples/2]
	in := [][]int16{nil, tone, nil, short}
	out := outputs(4)
	out[2] = nil // nobody listens
	for _, o := range out {
		if o != nil {
			o[0] = 1234 // must be overwritten
		}
	}
	var m Mixer
	m.MixMinusOne(out, in)
	equal(t, "out[0]", out[0], sum(tone, short))
	equal(t, "out[1]", out[1], sum(short))
	equal(t, "out[3]", out[3], sum(tone))

	m.MixMinusOne(out[:2], [][]int16{nil, nil})
	equal(t, "silence", out[0], make([]int, FrameSamples))

	defer func() {
		if recover() == nil {
			t.Error("MixMinusOne with fewer outputs than inputs did not panic")
		}
	}()
	m.MixMinusOne(out[:1], in)
}

func TestMixNoAllocs(t *testing.T) {
	var freqs []float64
	for i := range 64 {
		freqs = append(freqs, 100+float64(i)*50)
	}
	in := tones(5000, freqs...)
	in[3] = nil
	out := outputs(len(in))
	all := make([]int16, FrameSamples)
	m := NewMixer()
	if n := testing.AllocsPerRun(100, func() {
		m.MixMinusOne(out, in)
		m.Mix(all, in)
	}); n != 0 {
		t.Errorf("mixing 64 sources allocates %.1f times", n)
	}
}

func TestRMSAndTone(t *testing.T) {
	if RMS(nil) != 0 {
		t.Error("RMS(nil) != 0")
	}
	if r := RMS([]int16{-3, 3, -3, 3}); r != 3 {
		t.Errorf("RMS of ±3 = %v", r)
	}
	// A sine's RMS is its amplitude over √2, and two calls make one tone.
	var phase float64
	a := Tone(nil, 1000, 10000, 80, &phase)
	a = Tone(a, 1000, 10000, 80, &phase)
	b := Tone(nil, 1000, 10000, 160, nil)
	if !slices.Equal(a, b) {
		t.Error("a tone made in two calls differs from one made in one")
	}
	if r := RMS(b); math.Abs(r-10000/math.Sqrt2) > 10 {
		t.Errorf("RMS of a sine of amplitude 10000 = %.1f", r)
	}
	if got := Tone(nil, 1000, math.MinInt16, 160, nil); slices.Min(got) != -32768 || slices.Max(got) != 32767 {
		t.Errorf("full-scale tone ranges over [%d, %d]", slices.Min(got), slices.Max(got))
	}
}
