package audio

import "math/bits"

// G.711 (ITU-T Recommendation G.711) companding, for 16-bit linear
// samples.
//
// μ-law works on the magnitude plus a bias of 0x84 (132), clipped so that
// the biased value fits 15 bits; the segment (exponent) is the position
// of the highest set bit above bit 7, and the 4-bit mantissa the bits
// just below it. All bits of the code word are inverted on the wire.
//
// A-law works on 13 bits (the sample shifted right by 3); segments 0 and
// 1 both have a step of 2, segment n ≥ 1 covers [16<<n, 32<<n). Even bits
// are inverted on the wire (XOR 0x55), and the sign bit is 1 for positive
// samples.
//
// Both decoders return the middle of the encoded interval, so the error
// of a round trip is at most half a step of the segment.

const (
	mulawBias = 0x84
	mulawClip = 32635 // largest magnitude whose biased value fits 15 bits
)

// segment[v] is the μ-law exponent of a biased magnitude whose bits above
// bit 7 are v: the index of the highest set bit of v, 0 for v <= 1.
var segment = func() (t [256]uint8) {
	for v := 1; v < 256; v++ {
		t[v] = uint8(bits.Len(uint(v)) - 1)
	}
	return t
}()

var (
	mulawTable = func() (t [256]int16) {
		for i := range t {
			t[i] = mulawDecode(byte(i))
		}
		return t
	}()
	alawTable = func() (t [256]int16) {
		for i := range t {
			t[i] = alawDecode(byte(i))
		}
		return t
	}()
)

// MulawEncode returns the G.711 μ-law code word of a 16-bit linear
// sample. Magnitudes above 32635 are clipped.
func MulawEncode(s int16) byte {
	x := int32(s)
	var sign byte
	if x < 0 {
		x = -x
		sign = 0x80
	}
	x = min(x, mulawClip) + mulawBias
	exp := segment[x>>7]
	mant := byte(x>>(exp+3)) & 0x0F
	return ^(sign | exp<<4 | mant)
}

// MulawDecode returns the 16-bit linear sample of a G.711 μ-law code
// word, from ±0 to ±32124.
func MulawDecode(b byte) int16 { return mulawTable[b] }

func mulawDecode(b byte) int16 {
	b = ^b
	exp := (b >> 4) & 7
	mant := int32(b & 0x0F)
	x := (mant<<3+mulawBias)<<exp - mulawBias
	if b&0x80 != 0 {
		return int16(-x)
	}
	return int16(x)
}

// AlawEncode returns the G.711 A-law code word of a 16-bit linear
// sample.
func AlawEncode(s int16) byte {
	x := int32(s) >> 3 // 13 bits
	sign := byte(0x80)
	if x < 0 {
		x = ^x // -x-1: the negative intervals mirror the positive ones
		sign = 0
	}
	var code byte
	if x < 32 {
		code = byte(x >> 1) // segment 0
	} else {
		seg := bits.Len32(uint32(x)) - 5 // 1..7
		code = byte(seg<<4) | byte(x>>seg)&0x0F
	}
	return (sign | code) ^ 0x55
}

// AlawDecode returns the 16-bit linear sample of a G.711 A-law code word,
// from ±8 to ±32256.
func AlawDecode(b byte) int16 { return alawTable[b] }

func alawDecode(b byte) int16 {
	b ^= 0x55
	seg := (b >> 4) & 7
	mant := int32(b & 0x0F)
	// The middle of the interval, in 16-bit units: (2·mant+1)·8 in
	// segment 0, (2·mant+33)·8 << (seg-1) above.
	x := mant<<4 + 8
	if seg > 0 {
		x = (mant<<4 + 0x108) << (seg - 1)
	}
	if b&0x80 == 0 {
		return int16(-x)
	}
	return int16(x)
}
