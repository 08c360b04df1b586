package audio

import (
	"math"
	"slices"
)

const (
	// MaxSpeakers is how many sources a Mixer mixes at most: the loudest
	// ones of the frame. The others add nothing, so that the line noise
	// of many idle participants does not build up into a hiss, as on
	// telephone conference bridges.
	MaxSpeakers = 4
	// SilenceThreshold is the RMS level under which a source's frame is
	// taken for silence and adds nothing to a mix: 32 is about -60 dBFS,
	// well under speech (around -20 to -30 dBFS) and over the idle noise
	// of a G.711 line.
	SilenceThreshold = 32
)

// Mixer mixes one 20 ms frame per source ([FrameSamples] samples at
// [Rate]) into frames for listeners. Sums are computed in 32 bits and
// saturated to 16 bits, so loud sources clip rather than wrap around.
// Only sources at or above [SilenceThreshold], and of those the
// [MaxSpeakers] loudest, are mixed; on a tie in loudness the source with
// the lower index wins. A listener who is one of the loudest hears the
// others of them, MaxSpeakers-1 at most.
//
// A Mixer holds scratch space so that mixing allocates nothing; the zero
// Mixer is ready to use. It is not safe for concurrent use.
type Mixer struct {
	sum [FrameSamples]int32
	all [FrameSamples]int16 // sum saturated: what listeners not selected hear
	// The selected sources, loudest first: count of them, their indexes
	// into the input and their energies (sum of squares).
	count  int
	idx    [MaxSpeakers]int
	energy [MaxSpeakers]int64
}

// NewMixer returns a Mixer.
func NewMixer() *Mixer { return &Mixer{} }

// MixMinusOne writes into out[i] the mix of every source but in[i]: what
// participant i hears, without its own voice (an "N-1" mix). in[i] is
// source i's frame, nil for a source with nothing to say this tick; a
// frame shorter than FrameSamples counts as followed by silence, samples
// past FrameSamples are ignored. out must be as long as in; out[i] must
// be at least FrameSamples long (the first FrameSamples samples are
// written), or nil for a source nobody listens to through this mix.
func (m *Mixer) MixMinusOne(out, in [][]int16) {
	if len(out) != len(in) {
		panic("audio: MixMinusOne with len(out) != len(in)")
	}
	m.selectAndSum(in)
	everyone := false // m.all holds the mix of every selected source
	for i, o := range out {
		if o == nil {
			continue
		}
		o = o[:FrameSamples]
		if m.selected(i) {
			own := in[i]
			for k := range o {
				var s int32
				if k < len(own) {
					s = int32(own[k])
				}
				o[k] = saturate(m.sum[k] - s)
			}
			continue
		}
		if !everyone {
			for k, s := range m.sum {
				m.all[k] = saturate(s)
			}
			everyone = true
		}
		copy(o, m.all[:])
	}
}

// Mix writes into out (at least FrameSamples long) the mix of every
// source, for someone who is not one of them (a recording, a listener
// only).
func (m *Mixer) Mix(out []int16, in [][]int16) {
	m.selectAndSum(in)
	for k, s := range m.sum {
		out[k] = saturate(s)
	}
}

// selectAndSum picks the sources to mix and sums them into m.sum.
func (m *Mixer) selectAndSum(in [][]int16) {
	m.count = 0
	for i, frame := range in {
		e := energy(frame)
		// Silent: RMS < SilenceThreshold, without the square root.
		if e < SilenceThreshold*SilenceThreshold*FrameSamples {
			continue
		}
		// Insert into the loudest-first list, if loud enough.
		pos := m.count
		for pos > 0 && m.energy[pos-1] < e {
			pos--
		}
		if pos == MaxSpeakers {
			continue
		}
		n := min(m.count+1, MaxSpeakers)
		copy(m.idx[pos+1:n], m.idx[pos:n-1])
		copy(m.energy[pos+1:n], m.energy[pos:n-1])
		m.idx[pos], m.energy[pos] = i, e
		m.count = n
	}

	clear(m.sum[:])
	for _, i := range m.idx[:m.count] {
		for k, s := range in[i][:min(len(in[i]), FrameSamples)] {
			m.sum[k] += int32(s)
		}
	}
}

// selected tells whether source i is in the mix.
func (m *Mixer) selected(i int) bool {
	return slices.Contains(m.idx[:m.count], i)
}

// energy is the sum of the squares of a frame's first FrameSamples
// samples.
func energy(frame []int16) int64 {
	var e int64
	for _, s := range frame[:min(len(frame), FrameSamples)] {
		e += int64(s) * int64(s)
	}
	return e
}

func saturate(x int32) int16 {
	return int16(min(max(x, math.MinInt16), math.MaxInt16))
}

// RMS returns the root mean square of pcm, in sample units (32767 is a
// full-scale square wave; a full-scale sine is about 23170).
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var e float64
	for _, s := range pcm {
		e += float64(s) * float64(s)
	}
	return math.Sqrt(e / float64(len(pcm)))
}

// Tone appends to dst n samples at Rate of a sine wave of frequency freq
// (Hz) and peak amplitude, and returns the extended slice. phase, if not
// nil, is the phase to start at, in radians, and is left at the phase to
// continue from, so that successive calls make one continuous tone.
func Tone(dst []int16, freq float64, amplitude int16, n int, phase *float64) []int16 {
	var p float64
	if phase != nil {
		p = *phase
	}
	step := 2 * math.Pi * freq / Rate
	dst = slices.Grow(dst, max(n, 0))
	for range n {
		dst = append(dst, saturate(int32(math.Round(float64(amplitude)*math.Sin(p)))))
		p = math.Mod(p+step, 2*math.Pi)
	}
	if phase != nil {
		*phase = p
	}
	return dst
}
