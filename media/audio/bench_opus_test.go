//go:build opus

package audio

import "testing"

// BenchmarkMixOpus is BenchmarkMixG711 with Opus (libopus at 8 kHz):
// one tick of N participants decoded, mixed N-1 and encoded.
func BenchmarkMixOpus(b *testing.B) { benchMix(b, "opus") }
