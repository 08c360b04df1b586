package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte{5, 0x0A, 0x00, 0xA0})
	f.Add([]byte{11, 0x8A, 0x03, 0x20})
	f.Add([]byte{16, 0, 0, 0})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{15, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, payload []byte) {
		e, err := ParseEvent(payload)
		if err != nil {
			if !errors.Is(err, ErrShortEvent) && !errors.Is(err, ErrUnknownEvent) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if strings.IndexByte(dtmfDigits, e.Digit) < 0 || e.Volume > 63 {
			t.Fatalf("parsed %+v", e)
		}
		// The payload comes back but for the reserved bit.
		want := []byte{payload[0], payload[1] &^ 0x40, payload[2], payload[3]}
		if got := e.Append(nil); !bytes.Equal(got, want) {
			t.Fatalf("Append(ParseEvent(% x)) = % x", payload[:4], got)
		}
	})
}

func FuzzParseDTMFRelay(f *testing.F) {
	f.Add([]byte("Signal=5\r\nDuration=160\r\n"))
	f.Add([]byte("signal = 11\n"))
	f.Add([]byte("Duration=100\r\nSignal=A"))
	f.Add([]byte("Signal=\r\n"))
	f.Add([]byte("=\n=\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) (byte, error){ParseDTMFRelay, ParseDTMFBody} {
			d, err := parse(body)
			if err != nil {
				if !errors.Is(err, ErrNoSignal) && !errors.Is(err, ErrUnknownEvent) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if _, ok := eventCode(d); !ok || d >= 'a' {
				t.Fatalf("parsed digit %q", d)
			}
		}
	})
}

func FuzzReadWAV(f *testing.F) {
	f.Add(WriteWAV([]int16{1, -2, 3}, 8000))
	f.Add(WriteWAV(nil, 48000))
	f.Add(riff(chunk("LIST", []byte("abc")), chunk("data", []byte{1, 2, 3}), chunk("fmt ", fmtBody(1, 1, 16000, 16))))
	f.Add(riff(chunk("fmt ", fmtBody(1, 2, 8000, 16)), chunk("data", make([]byte, 8))))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pcm, rate, err := ReadWAV(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidWAV) && !errors.Is(err, ErrUnsupportedWAV) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if rate <= 0 || 2*len(pcm) > len(data) {
			t.Fatalf("%d samples at %d Hz from %d bytes", len(pcm), rate, len(data))
		}
		again, rate2, err := ReadWAV(WriteWAV(pcm, rate))
		if err != nil || rate2 != rate || !slices.Equal(again, pcm) {
			t.Fatalf("round trip: %d samples at %d Hz, %v", len(again), rate2, err)
		}
	})
}

// FuzzJitterBuffer drives a jitter buffer with pushes and pops read from
// the input: each payload pushed is distinct, and no payload may come
// out that was not pushed, nor come out twice, nor may more be stored
// than the cap.
func FuzzJitterBuffer(f *testing.F) {
	f.Add([]byte{1, 0, 0, 1, 1, 0, 0, 0, 1, 2, 0, 0, 0})
	f.Add([]byte{3, 0xFF, 0xFF, 0, 3, 0, 0, 20, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{1, 1, 5}, 100))
	f.Add([]byte{1, 0x80, 1, 0, 1, 0x7F, 2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		jb := NewJitterBuffer(8000, 160)
		var seq uint16
		var at time.Duration
		var pushed uint32
		popped := map[uint32]bool{}
		for len(ops) > 0 {
			op := ops[0]
			ops = ops[1:]
			if op&1 == 0 {
				p, ok := jb.Pop()
				if ok {
					if len(p) != 4 {
						t.Fatalf("popped %d bytes", len(p))
					}
					id := binary.BigEndian.Uint32(p)
					if id >= pushed || popped[id] {
						t.Fatalf("popped payload %d of %d pushed (twice: %v)", id, pushed, popped[id])
					}
					popped[id] = true
				} else if p != nil {
					t.Fatal("Pop returned a payload with ok false")
				}
			} else {
				if len(ops) < 2 {
					return
				}
				step, jitter := int8(ops[0]), ops[1]
				ops = ops[2:]
				if op&2 != 0 {
					seq += uint16(step) << 8 // a jump
				} else {
					seq += uint16(step)
				}
				at += time.Duration(jitter) * time.Millisecond
				jb.Push(seq, uint32(seq)*160+uint32(op>>2), epoch.Add(at), binary.BigEndian.AppendUint32(nil, pushed))
				pushed++
			}
			full := 0
			for _, s := range jb.slots {
				if s.full {
					full++
					if d := uint16(s.seq - jb.next); d >= jitterWindow {
						t.Fatalf("packet %d stored, %d ahead of the next %d", s.seq, d, jb.next)
					}
				}
			}
			if full != jb.count || jb.count > jitterWindow {
				t.Fatalf("%d packets stored, %d counted", full, jb.count)
			}
			if d := jb.Delay(); d < 40*time.Millisecond || d > 200*time.Millisecond {
				t.Fatalf("Delay %v", d)
			}
		}
	})
}
