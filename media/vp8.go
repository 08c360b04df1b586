package media

import "errors"

// errVP8Short is returned for a VP8 payload that ends inside its payload
// descriptor.
var errVP8Short = errors.New("media: VP8 payload descriptor truncated")

// vp8Desc is what the bridge reads of a VP8 RTP payload (RFC 7741): the
// payload descriptor's fields it rewrites, and whether the packet starts
// a keyframe.
type vp8Desc struct {
	size     int  // the descriptor's length in bytes
	keyframe bool // the first packet of a keyframe
	// picture ID: present, its value, and whether it is 15 bits (M set)
	// rather than 7
	hasPic bool
	pic15  bool
	pic    uint16
	hasTL0 bool
	tl0    uint8
	// width and height, from a keyframe's header (0 if not in this packet)
	width, height uint16
}

// parseVP8 reads a VP8 payload descriptor and, on a frame's first
// packet, the frame's keyframe bit and size. It never reads past p.
func parseVP8(p []byte) (vp8Desc, error) {
	var d vp8Desc
	if len(p) < 1 {
		return d, errVP8Short
	}
	x, start, partition := p[0]&0x80 != 0, p[0]&0x10 != 0, p[0]&0x07
	i := 1
	if x {
		if len(p) < 2 {
			return d, errVP8Short
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture ID
			if len(p) < i+1 {
				return d, errVP8Short
			}
			d.hasPic = true
			if p[i]&0x80 != 0 { // M: 15 bits
				if len(p) < i+2 {
					return d, errVP8Short
				}
				d.pic15 = true
				d.pic = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				d.pic = uint16(p[i])
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			if len(p) < i+1 {
				return d, errVP8Short
			}
			d.hasTL0 = true
			d.tl0 = p[i]
			i++
		}
		if ext&0x30 != 0 { // T or K: TID, Y and KEYIDX
			if len(p) < i+1 {
				return d, errVP8Short
			}
			i++
		}
	}
	d.size = i
	// The VP8 payload header (RFC 6386 section 9.1) opens the frame's
	// first partition: bit 0 of its first byte is 0 for a keyframe, whose
	// header then carries the start code and the frame's size.
	if start && partition == 0 && len(p) > i {
		d.keyframe = p[i]&0x01 == 0
		if d.keyframe && len(p) >= i+10 && p[i+3] == 0x9d && p[i+4] == 0x01 && p[i+5] == 0x2a {
			d.width = (uint16(p[i+6]) | uint16(p[i+7])<<8) & 0x3fff
			d.height = (uint16(p[i+8]) | uint16(p[i+9])<<8) & 0x3fff
		}
	}
	return d, nil
}

// putVP8 writes into dst the payload p (whose descriptor is d) with the
// picture ID pic, always as 15 bits, and TL0PICIDX tl0 in place of its
// own, and returns its length. dst must hold len(p)+1 bytes.
func putVP8(dst, p []byte, d *vp8Desc, pic uint16, tl0 uint8) int {
	n := copy(dst, p[:1])
	if p[0]&0x80 != 0 {
		ext := p[1]
		dst[n] = ext
		n++
		if d.hasPic {
			dst[n], dst[n+1] = 0x80|byte(pic>>8)&0x7f, byte(pic)
			n += 2
		}
		if d.hasTL0 {
			dst[n] = tl0
			n++
		}
		if ext&0x30 != 0 {
			dst[n] = p[d.size-1]
			n++
		}
	}
	return n + copy(dst[n:], p[d.size:])
}
