package auth

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// sipFramer follows SIP messages on a stream (RFC 3261 section 18.3): a
// start line and headers up to an empty line, then Content-Length bytes
// of body. CRLFs between messages are keep-alives (RFC 5626).
type sipFramer struct {
	max   int
	state byte // 0 between messages, 1 in the headers, 2 in the body
	size  int  // header bytes so far
	line  []byte
	llen  int   // length of the current line, without CR
	clen  int64 // the message's Content-Length
	body  int64 // body bytes still to come
	done  bool  // a message has ended
}

// sipLineKept is how much of a header line is kept: enough for
// "Content-Length: " and any number sipgo would take.
const sipLineKept = 64

func (f *sipFramer) inMessage() bool { return f.state != 0 }
func (f *sipFramer) ended() bool     { return f.done }

func (f *sipFramer) feed(p []byte) (began bool, err error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch f.state {
		case 0:
			if c == '\r' || c == '\n' {
				continue
			}
			f.state, f.size, f.clen, f.line, f.llen = 1, 0, 0, f.line[:0], 0
			began = true
			fallthrough
		case 1:
			if f.size++; f.size > f.max {
				return began, ErrMessageTooLarge
			}
			switch c {
			case '\r':
			case '\n':
				if f.llen == 0 { // the empty line: the body follows
					if f.clen == 0 {
						f.state, f.done = 0, true
					} else {
						f.state, f.body = 2, f.clen
					}
					continue
				}
				if err := f.header(); err != nil {
					return began, err
				}
				f.line, f.llen = f.line[:0], 0
			default:
				f.llen++
				if len(f.line) < sipLineKept {
					f.line = append(f.line, c)
				}
			}
		case 2:
			n := min(int64(len(p)-i), f.body)
			f.body -= n
			i += int(n) - 1
			if f.body == 0 {
				f.state, f.done = 0, true
			}
		}
	}
	return began, nil
}

// header reads the Content-Length (or its compact form, l) from the line.
func (f *sipFramer) header() error {
	name, value, ok := bytes.Cut(f.line, []byte(":"))
	if !ok {
		return nil
	}
	name = bytes.TrimSpace(name)
	if !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("l")) {
		return nil
	}
	if f.llen > sipLineKept {
		return ErrMalformedFrame
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
	switch {
	case err != nil || n < 0:
		return ErrMalformedFrame
	case n > int64(f.max-f.size):
		return ErrMessageTooLarge
	}
	f.clen = n
	return nil
}

// wsFramer follows the frames a WebSocket client sends (RFC 6455 section
// 5.2) and refuses a frame declaring a payload over max as soon as its
// header is in.
type wsFramer struct {
	max      uint64
	upgraded bool // the upgrade request is through: an ended message
	state    byte // 0 between frames, 1 in a header, 2 in a payload
	hdr      [14]byte
	hn, need int
	payload  uint64
	msg      uint64 // the payload of the data message's frames so far
	done     bool
}

func (f *wsFramer) inMessage() bool { return f.state != 0 }
func (f *wsFramer) ended() bool     { return f.done || f.upgraded }

func (f *wsFramer) feed(p []byte) (began bool, err error) {
	for i := 0; i < len(p); i++ {
		switch f.state {
		case 0:
			f.state, f.hn, f.need = 1, 0, 2
			began = true
			fallthrough
		case 1:
			f.hdr[f.hn] = p[i]
			f.hn++
			if f.hn == 2 {
				switch f.hdr[1] & 0x7f {
				case 126:
					f.need += 2
				case 127:
					f.need += 8
				}
				if f.hdr[1]&0x80 != 0 {
					f.need += 4 // the masking key
				}
			}
			if f.hn < f.need {
				continue
			}
			n := uint64(f.hdr[1] & 0x7f)
			switch n {
			case 126:
				n = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
			case 127:
				n = binary.BigEndian.Uint64(f.hdr[2:10])
			}
			if n > f.max {
				return began, ErrMessageTooLarge
			}
			// A data message may come in fragments (RFC 6455, 5.4),
			// which sipgo joins into one read: their sum is bounded too.
			// Control frames (opcode 8 and over) may come between them.
			if f.hdr[0]&0x08 == 0 {
				if f.msg += n; f.msg > f.max {
					return began, ErrMessageTooLarge
				}
				if f.hdr[0]&0x80 != 0 { // FIN: the message ends with this frame
					f.msg = 0
				}
			}
			if n == 0 {
				f.state, f.done = 0, true
			} else {
				f.state, f.payload = 2, n
			}
		case 2:
			n := min(uint64(len(p)-i), f.payload)
			f.payload -= n
			i += int(n) - 1
			if f.payload == 0 {
				f.state, f.done = 0, true
			}
		}
	}
	return began, nil
}
