package auth

import (
	"errors"
	"testing"
)

// feedAll feeds data to f in chunks of the given size and returns how
// many messages began and the first error.
func feedAll(f framer, data []byte, chunk int) (began int, err error) {
	for len(data) > 0 {
		n := min(chunk, len(data))
		b, err := f.feed(data[:n])
		if b {
			began++
		}
		if err != nil {
			return began, err
		}
		data = data[n:]
	}
	return began, nil
}

func TestSIPFraming(t *testing.T) {
	two := optionsMsg + "\r\n\r\n" + "MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello" + "INFO sip:a@b SIP/2.0\r\n"
	for _, tc := range []struct {
		name    string
		in      string
		max     int
		ended   bool
		inMsg   bool
		wantErr error
	}{
		{"a message ends at its empty line without a body", optionsMsg, 4096, true, false, nil},
		{"keep-alives, a body by compact Content-Length, and a message begun", two, 4096, true, true, nil},
		{"Content-Length over the limit", "INVITE sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n", 4096, false, true, ErrMessageTooLarge},
		{"headers over the limit", "INVITE sip:a@b SIP/2.0\r\nX: " + string(make([]byte, 5000)), 4096, false, true, ErrMessageTooLarge},
		{"Content-Length not a number", "INVITE sip:a@b SIP/2.0\r\nContent-Length: ten\r\n\r\n", 4096, false, true, ErrMalformedFrame},
		{"only keep-alives", "\r\n\r\n\r\n", 4096, false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 7, len(tc.in)} {
				f := &sipFramer{max: tc.max}
				_, err := feedAll(f, []byte(tc.in), chunk)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("chunks of %d: error %v, want %v", chunk, err, tc.wantErr)
				}
				if err == nil && (f.ended() != tc.ended || f.inMessage() != tc.inMsg) {
					t.Fatalf("chunks of %d: ended %v in a message %v", chunk, f.ended(), f.inMessage())
				}
			}
		})
	}
}

// TestWebSocketFragmentsBounded: a WebSocket message in fragments is
// bounded by its sum, whatever the fragments' sizes (sipgo joins them
// into one read), and a ping between fragments does not count.
func TestWebSocketFragmentsBounded(t *testing.T) {
	frame := func(b0 byte, n int) []byte {
		return append([]byte{b0, 0x80 | 126, byte(n >> 8), byte(n), 1, 2, 3, 4}, make([]byte, n)...)
	}
	ping := []byte{0x89, 0x80, 1, 2, 3, 4}
	var ok, over []byte
	// 600 + ping + 400 (FIN): 1,000 of 1,024; then a new message of 1,000.
	ok = append(append(append(append(ok, frame(0x01, 600)...), ping...), frame(0x80, 400)...), frame(0x81, 1000)...)
	// 600 + 500 (FIN): 1,100, in fragments each under the limit.
	over = append(append(over, frame(0x01, 600)...), frame(0x80, 500)...)
	for _, chunk := range []int{1, 13, len(ok)} {
		if _, err := feedAll(&wsFramer{max: 1024}, ok, chunk); err != nil {
			t.Fatalf("chunks of %d: fragments of messages within the limit refused: %v", chunk, err)
		}
		if _, err := feedAll(&wsFramer{max: 1024}, over, chunk); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("chunks of %d: fragments summing over the limit: %v, want ErrMessageTooLarge", chunk, err)
		}
	}
}

// FuzzFraming: the SIP and WebSocket framers never panic, and what they
// conclude of a stream does not depend on how it is cut into reads.
func FuzzFraming(f *testing.F) {
	f.Add([]byte(optionsMsg), 3)
	f.Add([]byte("MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello\r\n\r\n"), 1)
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o', 0x89, 0x80, 1, 2, 3, 4}, 2)
	f.Add([]byte{0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, 5)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		chunk = 1 + abs(chunk)%64
		for _, mk := range []func() framer{
			func() framer { return &sipFramer{max: 1024} },
			func() framer { return &wsFramer{max: 1024} },
		} {
			whole, cut := mk(), mk()
			b1, err1 := feedAll(whole, data, len(data)+1)
			b2, err2 := feedAll(cut, data, chunk)
			if (err1 == nil) != (err2 == nil) || (err1 == nil && (whole.ended() != cut.ended() || whole.inMessage() != cut.inMessage())) {
				t.Fatalf("whole: %d %v; in chunks of %d: %d %v", b1, err1, chunk, b2, err2)
			}
		}
	})
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
