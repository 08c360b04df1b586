package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var (
	// ErrUnknownEvent is returned for a telephone-event other than the 16
	// DTMF ones, and for a digit that is not a DTMF digit.
	ErrUnknownEvent = errors.New("audio: not a DTMF event")
	// ErrShortEvent is returned by ParseEvent for a payload shorter than
	// the 4 bytes of an event.
	ErrShortEvent = errors.New("audio: telephone-event payload shorter than 4 bytes")
	// ErrNoSignal is returned by ParseDTMFRelay for a body without a
	// Signal line, and by ParseDTMFBody for an empty body.
	ErrNoSignal = errors.New("audio: no DTMF signal in body")
)

// dtmfDigits are the DTMF digits by RFC 4733 event code (RFC 4733 §3.2).
const dtmfDigits = "0123456789*#ABCD"

// eventCode returns the RFC 4733 event code of a DTMF digit ('a' to 'd'
// are taken for 'A' to 'D').
func eventCode(digit byte) (byte, bool) {
	if 'a' <= digit && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	i := strings.IndexByte(dtmfDigits, digit)
	return byte(i), i >= 0
}

// Event is one RFC 4733 telephone-event of a DTMF digit (RFC 4733 §2.3).
type Event struct {
	Digit    byte   // '0' to '9', '*', '#', 'A' to 'D'
	End      bool   // the E bit: the key was released
	Volume   uint8  // power level, in -dBm0 (0 to 63: larger is quieter)
	Duration uint16 // since the event began, in RTP timestamp units
}

// ParseEvent parses the payload of a telephone-event RTP packet. It
// reads the first 4 bytes and ignores any more; only the 16 DTMF events
// (codes 0 to 15) are understood, others return ErrUnknownEvent.
func ParseEvent(payload []byte) (Event, error) {
	if len(payload) < 4 {
		return Event{}, ErrShortEvent
	}
	code := payload[0]
	if int(code) >= len(dtmfDigits) {
		return Event{}, fmt.Errorf("%w: event %d", ErrUnknownEvent, code)
	}
	return Event{
		Digit:    dtmfDigits[code],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3F,
		Duration: binary.BigEndian.Uint16(payload[2:4]),
	}, nil
}

// Append appends the 4-byte payload of e to dst. A Volume above 63 is
// sent as 63; a Digit that is not a DTMF digit is sent as event 255,
// which receivers do not take for DTMF.
func (e Event) Append(dst []byte) []byte {
	code, ok := eventCode(e.Digit)
	if !ok {
		code = 255
	}
	b := min(e.Volume, 63)
	if e.End {
		b |= 0x80
	}
	dst = append(dst, code, b)
	return binary.BigEndian.AppendUint16(dst, e.Duration)
}

// eventStep is the time between packets of one event DigitEvents makes:
// 20 ms of the 8 kHz telephone-event clock.
const eventStep = 160

// DigitEvents returns the telephone-events of one key press as a sender
// (a PSTN gateway, a phone) transmits them (RFC 4733 §2.5.1): all share
// one RTP timestamp, the first gets the RTP marker bit. One goes every
// 20 ms (160 units of an 8 kHz clock) with the duration so far, then the
// end of the event is sent 3 times with the final duration, which must
// not be 0. volume is the power level, 0 to 63 (-dBm0).
func DigitEvents(digit byte, volume uint8, duration uint16) ([]Event, error) {
	code, ok := eventCode(digit)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %q", ErrUnknownEvent, digit)
	case volume > 63:
		return nil, fmt.Errorf("audio: DTMF volume %d out of 0-63", volume)
	case duration == 0:
		return nil, errors.New("audio: DTMF duration of 0")
	}
	digit = dtmfDigits[code]
	var events []Event
	for d := uint32(eventStep); d < uint32(duration); d += eventStep {
		events = append(events, Event{Digit: digit, Volume: volume, Duration: uint16(d)})
	}
	end := Event{Digit: digit, End: true, Volume: volume, Duration: duration}
	return append(events, end, end, end), nil
}

// DigitDetector turns the telephone-events of a stream into key presses.
// A sender repeats itself: it sends an event's start more than once
// (updates), and its end three times, all with the event's RTP
// timestamp; and the network may lose or reorder any of them. The
// detector reports a digit on the first packet it gets of each new
// timestamp, whichever packet that is, so a press is reported once,
// without waiting for its end, even if its start or all of its end
// packets were lost. Packets with a timestamp older than the last one
// (reordered leftovers of an earlier event) are ignored, as is the next
// segment of the same digit in an event longer than the 16-bit duration
// can tell (RFC 4733 §2.5.1.3).
//
// The zero DigitDetector is ready to use.
type DigitDetector struct {
	seen    bool
	ts      uint32 // timestamp of the last event
	digit   byte
	ended   bool   // an end packet of the last event came
	longest uint16 // the longest duration seen of the last event
}

// Feed takes one telephone-event and the RTP timestamp of its packet,
// and returns the digit pressed if this packet tells of a new press.
func (d *DigitDetector) Feed(ts uint32, e Event) (digit byte, ok bool) {
	if d.seen {
		switch delta := int32(ts - d.ts); {
		case delta == 0:
			d.ended = d.ended || e.End
			d.longest = max(d.longest, e.Duration)
			return 0, false
		case delta < 0:
			return 0, false
		case e.Digit == d.digit && !d.ended && d.continues(uint32(delta)):
			d.ts, d.ended, d.longest = ts, e.End, e.Duration
			return 0, false
		}
	}
	*d = DigitDetector{seen: true, ts: ts, digit: e.Digit, ended: e.End, longest: e.Duration}
	return e.Digit, true
}

// continues tells whether an event delta timestamp units after the last
// one is its next segment: one that starts where the last, which must
// have run (nearly) to the longest duration, stopped.
func (d *DigitDetector) continues(delta uint32) bool {
	const nearlyFull = 0xFFFF - 8000 // within a second of 8 kHz
	return d.longest >= nearlyFull && delta >= uint32(d.longest) && delta <= 0xFFFF
}

// ParseDTMFRelay parses the body of a SIP INFO request of type
// application/dtmf-relay, such as "Signal=5\r\nDuration=160\r\n", and
// returns the digit of its Signal line. Keys are case-insensitive and
// lines may end in CRLF or LF; the Signal may be a digit ('0' to '9', '*',
// '#', 'A' to 'D' in either case) or an event code from 10 to 15 ("10"
// for '*', "11" for '#', "12" to "15" for 'A' to 'D'). Other lines are
// ignored.
func ParseDTMFRelay(body []byte) (digit byte, err error) {
	for line := range bytes.Lines(body) {
		key, value, ok := bytes.Cut(line, []byte("="))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(key), []byte("Signal")) {
			continue
		}
		return parseSignal(bytes.TrimSpace(value))
	}
	return 0, ErrNoSignal
}

// ParseDTMFBody parses the body of a SIP INFO request of type
// application/dtmf: a digit alone, as ParseDTMFRelay takes a Signal,
// possibly surrounded by white space.
func ParseDTMFBody(body []byte) (digit byte, err error) {
	s := bytes.TrimSpace(body)
	if len(s) == 0 {
		return 0, ErrNoSignal
	}
	return parseSignal(s)
}

func parseSignal(s []byte) (byte, error) {
	if len(s) == 1 {
		if code, ok := eventCode(s[0]); ok {
			return dtmfDigits[code], nil
		}
	}
	if len(s) == 2 {
		if n, err := strconv.Atoi(string(s)); err == nil && 10 <= n && n < len(dtmfDigits) {
			return dtmfDigits[n], nil
		}
	}
	return 0, fmt.Errorf("%w: signal %q", ErrUnknownEvent, s)
}
