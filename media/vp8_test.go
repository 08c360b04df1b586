package media

import (
	"bytes"
	"testing"
)

// vp8Payload builds a VP8 RTP payload: a descriptor with a 15-bit
// picture ID and TL0PICIDX, and, on a frame's first packet (start), a
// payload header marking a keyframe or not; a keyframe carries its size.
// body follows.
func vp8Payload(pic uint16, tl0 uint8, start, key bool, width, height uint16, body []byte) []byte {
	b0 := byte(0x80) // X
	if start {
		b0 |= 0x10 // S, partition 0
	}
	p := []byte{b0, 0x80 | 0x40, 0x80 | byte(pic>>8)&0x7f, byte(pic), tl0}
	if start {
		if key {
			p = append(p, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, byte(width), byte(width>>8), byte(height), byte(height>>8))
		} else {
			p = append(p, 0x01, 0x00, 0x00)
		}
	}
	return append(p, body...)
}

func TestParseVP8(t *testing.T) {
	cases := []struct {
		name string
		p    []byte
		want vp8Desc
	}{
		{"keyframe, 15-bit picture ID, TL0PICIDX", vp8Payload(0x1234, 7, true, true, 640, 360, []byte("h")),
			vp8Desc{size: 5, keyframe: true, hasPic: true, pic15: true, pic: 0x1234, hasTL0: true, tl0: 7, width: 640, height: 360}},
		{"first packet of a delta frame", vp8Payload(5, 1, true, false, 0, 0, nil),
			vp8Desc{size: 5, hasPic: true, pic15: true, pic: 5, hasTL0: true, tl0: 1}},
		{"a keyframe's later packet", vp8Payload(5, 1, false, true, 0, 0, []byte{0, 0, 0}),
			vp8Desc{size: 5, hasPic: true, pic15: true, pic: 5, hasTL0: true, tl0: 1}},
		{"7-bit picture ID and TID", []byte{0x90, 0xa0, 0x7f, 0x40, 0x00}, vp8Desc{size: 4, keyframe: true, hasPic: true, pic: 0x7f}},
		{"no extension", []byte{0x10, 0x01}, vp8Desc{size: 1}},
		{"keyframe of another partition is not a start", []byte{0x11, 0x00}, vp8Desc{size: 1}},
	}
	for _, c := range cases {
		got, err := parseVP8(c.p)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	for _, short := range [][]byte{nil, {0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0x80, 0x40}, {0x80, 0x20}} {
		if _, err := parseVP8(short); err == nil {
			t.Errorf("%x: no error for a truncated descriptor", short)
		}
	}
}

// A 7-bit picture ID is written back as 15 bits, the rest of the payload
// unchanged.
func TestPutVP8WidensPictureID(t *testing.T) {
	in := []byte{0x90, 0xe0, 0x05, 0x09, 0x00, 0x00, 0x00, 'x'}
	d, err := parseVP8(in)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(in)+1)
	n := putVP8(dst, in, &d, 0x4321, 3)
	got, err := parseVP8(dst[:n])
	if err != nil || !got.pic15 || got.pic != 0x4321 || got.tl0 != 3 || !got.keyframe || got.size != d.size+1 {
		t.Fatalf("%+v %v", got, err)
	}
	if !bytes.Equal(dst[got.size:n], in[d.size:]) {
		t.Fatalf("payload %x, want %x", dst[got.size:n], in[d.size:])
	}
}
