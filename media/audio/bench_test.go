package audio

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMixG711 measures one 20 ms tick of a bridge of N G.711
// participants: decoding a payload from each, mixing N-1 for each, and
// encoding each one's mix. participants/core is how many participants
// one core could serve in real time at that cost.
func BenchmarkMixG711(b *testing.B) { benchMix(b, "PCMU") }

// benchMix runs the tick benchmark for a codec. Every participant talks
// (a tone of its own), which is the most work for the mixer: it weighs
// every frame and mixes MaxSpeakers of them.
func benchMix(b *testing.B, codec string) {
	for _, n := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			decs := make([]Decoder, n)
			encs := make([]Encoder, n)
			payloads := make([][]byte, n)
			in := make([][]int16, n)
			out := make([][]int16, n)
			sent := make([][]byte, n)
			for i := range n {
				enc, err := NewEncoder(codec)
				if err != nil {
					b.Fatal(err)
				}
				dec, err := NewDecoder(codec)
				if err != nil {
					b.Fatal(err)
				}
				// A few frames of the participant's tone: the last is
				// the payload received on every tick.
				var phase float64
				for range 5 {
					payloads[i], err = enc.Encode(payloads[i][:0], Tone(nil, 200+float64(i)*37, 4000, FrameSamples, &phase))
					if err != nil {
						b.Fatal(err)
					}
				}
				encs[i], decs[i] = enc, dec
				in[i] = make([]int16, 0, 6*FrameSamples) // room for an Opus packet of up to 120 ms
				out[i] = make([]int16, FrameSamples)
				sent[i] = make([]byte, 0, 1500)
			}
			m := NewMixer()
			b.ReportAllocs()
			for b.Loop() {
				for i, dec := range decs {
					pcm, err := dec.Decode(in[i][:0], payloads[i])
					if err != nil {
						b.Fatal(err)
					}
					in[i] = pcm
				}
				m.MixMinusOne(out, in)
				for i, enc := range encs {
					p, err := enc.Encode(sent[i][:0], out[i])
					if err != nil {
						b.Fatal(err)
					}
					sent[i] = p
				}
			}
			perTick := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(n)*float64(20*time.Millisecond)/perTick, "participants/core")
		})
	}
}

// BenchmarkMulawEncode measures G.711 μ-law encoding of 20 ms frames;
// the throughput is of 16-bit PCM in.
func BenchmarkMulawEncode(b *testing.B) {
	enc, _ := NewEncoder("PCMU")
	pcm := Tone(nil, 440, 10000, FrameSamples, nil)
	dst := make([]byte, 0, FrameSamples)
	b.SetBytes(2 * FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = enc.Encode(dst[:0], pcm)
	}
}
