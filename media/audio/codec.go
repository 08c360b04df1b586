package audio

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

const (
	// Rate is the sampling rate of everything this package mixes, in Hz.
	Rate = 8000
	// FrameSamples is the number of samples in one 20 ms frame at Rate:
	// the unit of mixing, packetization and jitter buffering.
	FrameSamples = 160
)

var (
	// ErrNoOpus is returned by NewEncoder and NewDecoder for "opus" in a
	// build without the "opus" tag (see OpusBuilt).
	ErrNoOpus = errors.New("audio: built without Opus (build with -tags opus and libopus-dev)")
	// ErrUnknownCodec is returned by NewEncoder and NewDecoder for a codec
	// name other than PCMU, PCMA and opus.
	ErrUnknownCodec = errors.New("audio: unknown codec")
)

// Encoder turns one frame of PCM at Rate (mono) into one RTP payload,
// appended to dst.
type Encoder interface {
	Encode(dst []byte, pcm []int16) ([]byte, error)
}

// Decoder turns RTP payloads into PCM at Rate (mono).
//
// Decode appends to dst the samples one payload holds, however long they
// last. Conceal appends n samples standing in for audio that was lost (a
// packet that never came): G.711 fades out the last 20 ms heard, Opus
// asks libopus for its packet loss concealment.
type Decoder interface {
	Decode(dst []int16, payload []byte) ([]int16, error)
	Conceal(dst []int16, n int) []int16
}

// NewEncoder returns an encoder for the codec named by its RTP encoding
// name, case-insensitively: "PCMU" (G.711 μ-law), "PCMA" (G.711 A-law) or
// "opus". G.711 takes frames of any length and makes one byte per
// sample. Opus (libopus, VoIP application, mono, input at Rate) takes
// frames of 2.5, 5, 10, 20, 40 or 60 ms; the RTP clock of Opus is 48 kHz
// whatever the input rate, which is the caller's business.
func NewEncoder(codec string) (Encoder, error) {
	switch {
	case strings.EqualFold(codec, "PCMU"):
		return g711Encoder{MulawEncode}, nil
	case strings.EqualFold(codec, "PCMA"):
		return g711Encoder{AlawEncode}, nil
	case strings.EqualFold(codec, "opus"):
		return newOpusEncoder()
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownCodec, codec)
}

// NewDecoder returns a decoder for the codec named by its RTP encoding
// name, as NewEncoder does. The Opus decoder outputs mono at Rate.
func NewDecoder(codec string) (Decoder, error) {
	switch {
	case strings.EqualFold(codec, "PCMU"):
		return &g711Decoder{table: &mulawTable}, nil
	case strings.EqualFold(codec, "PCMA"):
		return &g711Decoder{table: &alawTable}, nil
	case strings.EqualFold(codec, "opus"):
		return newOpusDecoder()
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownCodec, codec)
}

type g711Encoder struct {
	encode func(int16) byte
}

func (e g711Encoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	dst = slices.Grow(dst, len(pcm))
	for _, s := range pcm {
		dst = append(dst, e.encode(s))
	}
	return dst, nil
}

// Concealment of G.711 (which has none of its own): the last 20 ms
// decoded are repeated, at full level for the first 20 ms of a gap, then
// fading linearly to nothing at 60 ms; after that the gap is silence.
// Repeating keeps a voice sounding continuous over a single lost packet;
// the fade keeps a longer gap from becoming a buzz.
const (
	concealFull = FrameSamples     // samples repeated at full level
	concealEnd  = 3 * FrameSamples // samples after which a gap is silent
)

type g711Decoder struct {
	table *[256]int16
	// last holds the last FrameSamples samples decoded (fewer at the
	// start, lastLen of them), oldest first.
	last    [FrameSamples]int16
	lastLen int
	// lost counts the samples concealed since the last payload decoded.
	lost int
}

func (d *g711Decoder) Decode(dst []int16, payload []byte) ([]int16, error) {
	start := len(dst)
	dst = slices.Grow(dst, len(payload))
	for _, b := range payload {
		dst = append(dst, d.table[b])
	}
	d.remember(dst[start:])
	return dst, nil
}

// remember keeps the last FrameSamples samples of what was decoded.
func (d *g711Decoder) remember(pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	d.lost = 0
	if len(pcm) >= FrameSamples {
		copy(d.last[:], pcm[len(pcm)-FrameSamples:])
		d.lastLen = FrameSamples
		return
	}
	keep := min(d.lastLen, FrameSamples-len(pcm))
	copy(d.last[:], d.last[d.lastLen-keep:d.lastLen])
	copy(d.last[keep:], pcm)
	d.lastLen = keep + len(pcm)
}

func (d *g711Decoder) Conceal(dst []int16, n int) []int16 {
	if n <= 0 {
		return dst
	}
	dst = slices.Grow(dst, n)
	for range n {
		var s int16
		if k := d.lost; d.lastLen > 0 && k < concealEnd {
			x := int32(d.last[k%d.lastLen])
			if k >= concealFull {
				x = x * int32(concealEnd-k) / (concealEnd - concealFull)
			}
			s = int16(x)
		}
		dst = append(dst, s)
		if d.lost < concealEnd {
			d.lost++
		}
	}
	return dst
}
