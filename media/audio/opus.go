//go:build opus

package audio

import (
	"errors"
	"fmt"
	"slices"

	"gopkg.in/hraban/opus.v2"
)

// OpusBuilt tells whether this build has Opus (the "opus" build tag).
const OpusBuilt = true

const (
	// opusMaxPacket is the largest Opus packet of one frame (RFC 6716
	// §3.2.1), which is what Encode is given room for.
	opusMaxPacket = 1275
	// opusMaxSamples is the longest a packet can last, 120 ms, at Rate.
	opusMaxSamples = 120 * Rate / 1000
	// opusPLCStep is the granularity of libopus concealment, 2.5 ms.
	opusPLCStep = Rate / 400
)

type opusEncoder struct {
	enc *opus.Encoder
}

func newOpusEncoder() (Encoder, error) {
	enc, err := opus.NewEncoder(Rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("audio: opus encoder: %w", err)
	}
	return opusEncoder{enc}, nil
}

func (e opusEncoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	n0 := len(dst)
	dst = slices.Grow(dst, opusMaxPacket)
	// libopus writes at most cap(data) bytes of the slice it is given.
	n, err := e.enc.Encode(pcm, dst[n0:n0+opusMaxPacket:n0+opusMaxPacket])
	if err != nil {
		return dst, fmt.Errorf("audio: opus encode: %w", err)
	}
	return dst[:n0+n], nil
}

type opusDecoder struct {
	dec *opus.Decoder
	plc [FrameSamples]int16
}

func newOpusDecoder() (Decoder, error) {
	dec, err := opus.NewDecoder(Rate, 1)
	if err != nil {
		return nil, fmt.Errorf("audio: opus decoder: %w", err)
	}
	return &opusDecoder{dec: dec}, nil
}

var errEmptyOpus = errors.New("audio: empty opus payload")

func (d *opusDecoder) Decode(dst []int16, payload []byte) ([]int16, error) {
	if len(payload) == 0 {
		return dst, errEmptyOpus
	}
	n0 := len(dst)
	dst = slices.Grow(dst, opusMaxSamples)
	// libopus decodes at most cap(pcm) samples into the slice it is given.
	n, err := d.dec.Decode(payload, dst[n0:n0+opusMaxSamples:n0+opusMaxSamples])
	if err != nil {
		return dst, fmt.Errorf("audio: opus decode: %w", err)
	}
	return dst[:n0+n], nil
}

// Conceal asks libopus for n samples of concealment, a frame at a time.
// libopus conceals whole multiples of 2.5 ms, so a remainder is rounded
// up and the extra samples dropped. Should libopus fail (it does not for
// valid sizes), silence is appended instead.
func (d *opusDecoder) Conceal(dst []int16, n int) []int16 {
	dst = slices.Grow(dst, max(n, 0))
	for n > 0 {
		want := min(n, FrameSamples)
		m := (want + opusPLCStep - 1) / opusPLCStep * opusPLCStep
		buf := d.plc[:m:m]
		if err := d.dec.DecodePLC(buf); err != nil {
			clear(buf)
		}
		dst = append(dst, buf[:want]...)
		n -= want
	}
	return dst
}
