package audio

import (
	"errors"
	"fmt"
	"math"
)

// ErrUnsupportedRate is returned by Downsample for a rate that is not a
// whole multiple of Rate.
var ErrUnsupportedRate = errors.New("audio: unsupported sample rate")

// Downsample converts pcm sampled at from Hz to Rate. from must be Rate
// (pcm is returned copied) or a whole multiple of it, such as 16000 or
// 48000: the signal is low-pass filtered under the new Nyquist frequency
// (4 kHz), so that what is above does not fold back into the telephone
// band, and every (from/Rate)-th sample kept. The filter is a windowed
// sinc (Blackman window, 48 taps per multiple): within 0.2 dB up to
// 3.2 kHz, 6 dB down at 3.5 kHz, and more than 75 dB down from 4 kHz on.
// It is meant for prompts, converted once, not for live streams.
func Downsample(pcm []int16, from int) ([]int16, error) {
	if from <= 0 || from%Rate != 0 {
		return nil, fmt.Errorf("%w: %d Hz (only multiples of %d Hz)", ErrUnsupportedRate, from, Rate)
	}
	k := from / Rate
	if k == 1 {
		return append([]int16(nil), pcm...), nil
	}
	h := lowPass(k)
	half := len(h) / 2
	out := make([]int16, (len(pcm)+k-1)/k)
	for n := range out {
		center := n * k
		var acc float64
		lo, hi := max(center-half, 0), min(center+half, len(pcm)-1)
		for i := lo; i <= hi; i++ {
			acc += h[i-center+half] * float64(pcm[i])
		}
		out[n] = saturate(int32(max(min(math.Round(acc), math.MaxInt32), math.MinInt32)))
	}
	return out, nil
}

const lowPassCutoff = 3500 // Hz, where the gain is one half

// lowPass returns the taps of the anti-aliasing filter for decimating by
// k: 48·k+1 taps, normalized to a gain of 1 at 0 Hz.
func lowPass(k int) []float64 {
	fc := lowPassCutoff / float64(k*Rate) // as a fraction of the input rate
	n := 48*k + 1
	m := float64(n - 1)
	h := make([]float64, n)
	var sum float64
	for i := range h {
		x := float64(i) - m/2
		sinc := 2 * fc
		if x != 0 {
			sinc = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		w := 0.42 - 0.5*math.Cos(2*math.Pi*float64(i)/m) + 0.08*math.Cos(4*math.Pi*float64(i)/m)
		h[i] = sinc * w
		sum += h[i]
	}
	for i := range h {
		h[i] /= sum
	}
	return h
}
