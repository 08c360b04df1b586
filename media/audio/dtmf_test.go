package audio

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestParseEvent(t *testing.T) {
	for _, c := range []struct {
		payload []byte
		want    Event
	}{
		{[]byte{5, 0x0A, 0x00, 0xA0}, Event{Digit: '5', Volume: 10, Duration: 160}},
		{[]byte{10, 0x8A, 0x03, 0x20}, Event{Digit: '*', End: true, Volume: 10, Duration: 800}},
		{[]byte{11, 0xBF, 0xFF, 0xFF}, Event{Digit: '#', End: true, Volume: 63, Duration: 0xFFFF}},
		{[]byte{12, 0x40, 0, 0}, Event{Digit: 'A'}}, // R bit ignored
		{[]byte{15, 0x00, 0x01, 0x00, 0xEE}, Event{Digit: 'D', Duration: 256}},
		{[]byte{0, 0, 0, 0}, Event{Digit: '0'}},
	} {
		got, err := ParseEvent(c.payload)
		if err != nil || got != c.want {
			t.Errorf("ParseEvent(% x) = %+v, %v; want %+v", c.payload, got, err, c.want)
		}
	}
	for _, c := range []struct {
		payload []byte
		err     error
	}{
		{nil, ErrShortEvent},
		{[]byte{1, 2, 3}, ErrShortEvent},
		{[]byte{16, 0, 0, 0}, ErrUnknownEvent}, // flash hook (RFC 4734)
		{[]byte{255, 0, 0, 0}, ErrUnknownEvent},
	} {
		if _, err := ParseEvent(c.payload); !errors.Is(err, c.err) {
			t.Errorf("ParseEvent(% x) error = %v, want %v", c.payload, err, c.err)
		}
	}
}

func TestEventAppend(t *testing.T) {
	for i := range len(dtmfDigits) {
		for _, e := range []Event{
			{Digit: dtmfDigits[i], Volume: 10, Duration: 400},
			{Digit: dtmfDigits[i], End: true, Volume: 63, Duration: 0xFFFF},
		} {
			b := e.Append([]byte{0xAB})
			if len(b) != 5 || b[0] != 0xAB || b[1] != byte(i) {
				t.Fatalf("%+v.Append = % x", e, b)
			}
			if got, err := ParseEvent(b[1:]); err != nil || got != e {
				t.Errorf("ParseEvent(Append(%+v)) = %+v, %v", e, got, err)
			}
		}
	}
	if b := (Event{Digit: 'b', Volume: 200}).Append(nil); !bytes.Equal(b, []byte{13, 63, 0, 0}) {
		t.Errorf("Append of 'b' at volume 200 = % x, want 0d 3f 00 00", b)
	}
	if b := (Event{Digit: 'x'}).Append(nil); b[0] != 255 {
		t.Errorf("Append of 'x' = % x, want event 255", b)
	}
}

func TestDigitEvents(t *testing.T) {
	events, err := DigitEvents('7', 10, 800)
	if err != nil {
		t.Fatal(err)
	}
	var durations []uint16
	for i, e := range events {
		durations = append(durations, e.Duration)
		if e.Digit != '7' || e.Volume != 10 || e.End != (i >= len(events)-3) {
			t.Errorf("event %d = %+v", i, e)
		}
	}
	if want := []uint16{160, 320, 480, 640, 800, 800, 800}; !slices.Equal(durations, want) {
		t.Errorf("durations %v, want %v", durations, want)
	}
	if events, _ := DigitEvents('c', 0, 100); len(events) != 3 || events[0].Digit != 'C' {
		t.Errorf("a 100-unit press of 'c' = %+v, want 3 end packets of 'C'", events)
	}
	for _, c := range []struct {
		digit    byte
		volume   uint8
		duration uint16
	}{{'E', 10, 800}, {'5', 64, 800}, {'5', 10, 0}} {
		if _, err := DigitEvents(c.digit, c.volume, c.duration); err == nil {
			t.Errorf("DigitEvents(%q, %d, %d) succeeded", c.digit, c.volume, c.duration)
		}
	}
}

// packet is a telephone-event packet as a detector gets it.
type packet struct {
	ts    uint32
	event Event
}

// press returns the packets of one key press at timestamp ts.
func press(t *testing.T, digit byte, ts uint32, duration uint16) []packet {
	t.Helper()
	events, err := DigitEvents(digit, 10, duration)
	if err != nil {
		t.Fatal(err)
	}
	var p []packet
	for _, e := range events {
		p = append(p, packet{ts, e})
	}
	return p
}

func detect(d *DigitDetector, packets []packet) string {
	var got []byte
	for _, p := range packets {
		// Through the wire format, as a receiver would see them.
		e, err := ParseEvent(p.event.Append(nil))
		if err != nil {
			panic(err)
		}
		if digit, ok := d.Feed(p.ts, e); ok {
			got = append(got, digit)
		}
	}
	return string(got)
}

func TestDigitDetector(t *testing.T) {
	one := press(t, '1', 16000, 800)
	two := press(t, '2', 17600, 960)
	hash := press(t, '#', 19680, 640)
	two = two[:len(two)-3] // every end packet of '2' lost
	one[1], one[2] = one[2], one[1]
	one = slices.Delete(one, 0, 1) // the start of '1' lost, and updates reordered
	// A late end packet of '1' coming after '2' began.
	stream := slices.Concat(one, two[:2], one[len(one)-1:], two[2:], hash)
	var d DigitDetector
	if got := detect(&d, stream); got != "12#" {
		t.Errorf("detected %q, want \"12#\"", got)
	}

	// The same digit twice in a row is two presses.
	d = DigitDetector{}
	stream = slices.Concat(press(t, '5', 1000, 800), press(t, '5', 2400, 800))
	if got := detect(&d, stream); got != "55" {
		t.Errorf("detected %q, want \"55\"", got)
	}

	// Across the wrap-around of timestamps.
	d = DigitDetector{}
	stream = slices.Concat(press(t, '9', 0xFFFFFE00, 800), press(t, '0', 0x400, 800))
	if got := detect(&d, stream); got != "90" {
		t.Errorf("detected %q, want \"90\"", got)
	}
}

func TestDigitDetectorLongEvent(t *testing.T) {
	// RFC 4733 §2.5.1.3: an event longer than 0xFFFF units goes on in a
	// new segment, with a timestamp 0xFFFF later. It is one press.
	var stream []packet
	for d := uint32(400); d <= 0xFFFF; d += 400 {
		stream = append(stream, packet{5000, Event{Digit: '3', Duration: uint16(d)}})
	}
	stream = append(stream, packet{5000, Event{Digit: '3', Duration: 0xFFFF}})
	for d := uint16(400); d <= 2000; d += 400 {
		stream = append(stream, packet{5000 + 0xFFFF, Event{Digit: '3', Duration: d}})
	}
	end := packet{5000 + 0xFFFF, Event{Digit: '3', End: true, Duration: 2400}}
	stream = append(stream, end, end, end)
	var d DigitDetector
	if got := detect(&d, stream); got != "3" {
		t.Errorf("detected %q in one long press, want \"3\"", got)
	}
}

func TestParseDTMFRelay(t *testing.T) {
	for _, c := range []struct {
		body string
		want byte
	}{
		{"Signal=5\r\nDuration=160\r\n", '5'},
		{"signal=#\nduration=250\n", '#'},
		{"Duration=160\r\nSIGNAL = *\r\n", '*'},
		{"Signal=10\r\n", '*'},
		{"Signal=11", '#'},
		{"Signal=d\r\n", 'D'},
		{"Signal=12\r\n", 'A'},
		{"Signal= 0 \r\n", '0'},
	} {
		got, err := ParseDTMFRelay([]byte(c.body))
		if err != nil || got != c.want {
			t.Errorf("ParseDTMFRelay(%q) = %q, %v; want %q", c.body, got, err, c.want)
		}
	}
	for _, c := range []struct {
		body string
		err  error
	}{
		{"", ErrNoSignal},
		{"Duration=160\r\n", ErrNoSignal},
		{"Signals=5\r\n", ErrNoSignal},
		{"Signal\r\n", ErrNoSignal},
		{"Signal=\r\n", ErrUnknownEvent},
		{"Signal=E\r\n", ErrUnknownEvent},
		{"Signal=16\r\n", ErrUnknownEvent},
		{"Signal=55\r\n", ErrUnknownEvent},
		{"Signal=+1\r\n", ErrUnknownEvent},
		{"Signal=5 6\r\n", ErrUnknownEvent},
	} {
		if _, err := ParseDTMFRelay([]byte(c.body)); !errors.Is(err, c.err) {
			t.Errorf("ParseDTMFRelay(%q) error = %v, want %v", c.body, err, c.err)
		}
	}
}

func TestParseDTMFBody(t *testing.T) {
	for body, want := range map[string]byte{"5": '5', "#\r\n": '#', " a ": 'A', "11": '#'} {
		if got, err := ParseDTMFBody([]byte(body)); err != nil || got != want {
			t.Errorf("ParseDTMFBody(%q) = %q, %v; want %q", body, got, err, want)
		}
	}
	for body, want := range map[string]error{"": ErrNoSignal, " \r\n": ErrNoSignal, "55": ErrUnknownEvent, "x": ErrUnknownEvent} {
		if _, err := ParseDTMFBody([]byte(body)); !errors.Is(err, want) {
			t.Errorf("ParseDTMFBody(%q) error = %v, want %v", body, err, want)
		}
	}
}
