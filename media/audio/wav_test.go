package audio

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	for _, pcm := range [][]int16{
		Tone(nil, 440, 20000, 8000, nil),
		{math.MinInt16, -1, 0, 1, math.MaxInt16},
		{},
	} {
		data := WriteWAV(pcm, 16000)
		if len(data) != 44+2*len(pcm) {
			t.Errorf("WriteWAV of %d samples is %d bytes", len(pcm), len(data))
		}
		got, rate, err := ReadWAV(data)
		if err != nil || rate != 16000 || !slices.Equal(got, pcm) {
			t.Errorf("ReadWAV(WriteWAV) = %d samples at %d Hz, %v; want %d at 16000", len(got), rate, err, len(pcm))
		}
	}
}

// chunk makes a RIFF chunk, padded to an even size.
func chunk(id string, body []byte) []byte {
	b := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func fmtBody(format, channels uint16, rate uint32, bits uint16) []byte {
	b := binary.LittleEndian.AppendUint16(nil, format)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, rate*uint32(channels*bits/8))
	b = binary.LittleEndian.AppendUint16(b, channels*bits/8)
	return binary.LittleEndian.AppendUint16(b, bits)
}

func riff(chunks ...[]byte) []byte {
	body := slices.Concat(append([][]byte{[]byte("WAVE")}, chunks...)...)
	return slices.Concat([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body)
}

func TestReadWAVLayouts(t *testing.T) {
	samples := []byte{1, 0, 2, 0, 0xFF, 0xFF}
	want := []int16{1, 2, -1}
	for name, data := range map[string][]byte{
		"data before fmt": riff(chunk("data", samples), chunk("fmt ", fmtBody(1, 1, 8000, 16))),
		"odd chunks padded": riff(chunk("LIST", []byte("abc")), chunk("fmt ", fmtBody(1, 1, 8000, 16)),
			chunk("junk", []byte{9}), chunk("data", samples)),
		"extended fmt": riff(chunk("fmt ", append(fmtBody(1, 1, 8000, 16), 0, 0)), chunk("data", samples)),
		"odd data":     riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", append(samples, 7))),
		"trailing junk after RIFF": append(riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", samples)),
			[]byte("garbage")...),
	} {
		got, rate, err := ReadWAV(data)
		if err != nil || rate != 8000 || !slices.Equal(got, want) {
			t.Errorf("%s: ReadWAV = %v at %d Hz, %v; want %v", name, got, rate, err, want)
		}
	}
}

func TestReadWAVRejects(t *testing.T) {
	good := WriteWAV([]int16{1, 2, 3, 4}, 8000)
	for _, c := range []struct {
		name string
		data []byte
		err  error
	}{
		{"empty", nil, ErrInvalidWAV},
		{"not RIFF", []byte("RIFX\x00\x00\x00\x00WAVE"), ErrInvalidWAV},
		{"not WAVE", []byte("RIFF\x04\x00\x00\x00AVI "), ErrInvalidWAV},
		{"stereo", riff(chunk("fmt ", fmtBody(1, 2, 8000, 16)), chunk("data", make([]byte, 8))), ErrUnsupportedWAV},
		{"8-bit", riff(chunk("fmt ", fmtBody(1, 1, 8000, 8)), chunk("data", make([]byte, 8))), ErrUnsupportedWAV},
		{"float", riff(chunk("fmt ", fmtBody(3, 1, 8000, 32)), chunk("data", make([]byte, 8))), ErrUnsupportedWAV},
		{"μ-law", riff(chunk("fmt ", fmtBody(7, 1, 8000, 8)), chunk("data", make([]byte, 8))), ErrUnsupportedWAV},
		{"rate 0", riff(chunk("fmt ", fmtBody(1, 1, 0, 16)), chunk("data", make([]byte, 8))), ErrInvalidWAV},
		{"truncated data", good[:len(good)-3], ErrInvalidWAV},
		{"truncated header", good[:40], ErrInvalidWAV},
		{"truncated fmt", good[:30], ErrInvalidWAV},
		{"no data chunk", riff(chunk("fmt ", fmtBody(1, 1, 8000, 16))), ErrInvalidWAV},
		{"no fmt chunk", riff(chunk("data", make([]byte, 8))), ErrInvalidWAV},
		{"short fmt", riff(chunk("fmt ", make([]byte, 14)), chunk("data", make([]byte, 8))), ErrInvalidWAV},
		{"huge chunk", riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)), []byte("data\xff\xff\xff\xff\x01\x00")), ErrInvalidWAV},
	} {
		pcm, _, err := ReadWAV(c.data)
		if !errors.Is(err, c.err) || pcm != nil {
			t.Errorf("%s: ReadWAV = %d samples, %v; want %v", c.name, len(pcm), err, c.err)
		}
	}
}

func TestDownsample(t *testing.T) {
	for _, from := range []int{16000, 48000} {
		// A 1 kHz tone comes through at its level; a 6 kHz one, which
		// would fold back to 2 kHz, is gone.
		n := from / 10 // 100 ms
		pass := toneAt(from, 1000, 10000, n)
		stop := toneAt(from, 6000, 10000, n)
		got, err := Downsample(pass, from)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n*Rate/from {
			t.Fatalf("%d Hz: %d samples became %d, want %d", from, n, len(got), n*Rate/from)
		}
		want := Tone(nil, 1000, 10000, len(got), nil)
		mid := got[100 : len(got)-100] // away from the edges, where the filter runs off the signal
		if r := RMS(mid); math.Abs(r-RMS(want)) > 0.01*RMS(want) {
			t.Errorf("%d Hz: 1 kHz tone RMS %.0f after downsampling, want %.0f", from, r, RMS(want))
		}
		for k := 100; k < len(got)-100; k++ {
			if d := abs(int(got[k]) - int(want[k])); d > 20 {
				t.Fatalf("%d Hz: sample %d = %d, want %d", from, k, got[k], want[k])
			}
		}
		got, _ = Downsample(stop, from)
		if r := RMS(got[100 : len(got)-100]); r > 10 {
			t.Errorf("%d Hz: 6 kHz tone RMS %.1f after downsampling, want it filtered out", from, r)
		}
	}
	in := []int16{1, 2, 3}
	got, err := Downsample(in, Rate)
	if err != nil || !slices.Equal(got, in) || &got[0] == &in[0] {
		t.Errorf("Downsample at Rate = %v, %v; want a copy", got, err)
	}
	for _, from := range []int{0, -8000, 11025, 44100, 4000, 12000} {
		if _, err := Downsample(in, from); !errors.Is(err, ErrUnsupportedRate) {
			t.Errorf("Downsample from %d Hz: %v, want ErrUnsupportedRate", from, err)
		}
	}
	// Full scale does not wrap around (the filter overshoots a square wave).
	square := make([]int16, 1600)
	for k := range square {
		square[k] = math.MaxInt16
		if k/100%2 == 1 {
			square[k] = math.MinInt16
		}
	}
	got, _ = Downsample(square, 16000)
	// The filter overshoots by about 9% after each edge (every 50 output
	// samples): there, wrapping around would flip the sign.
	for k, s := range got[:len(got)-10] {
		if k%50 < 3 || k%50 > 47 {
			continue // on an edge
		}
		if in := square[2*k]; (s < 0) != (in < 0) || abs(int(s)) < 30000 {
			t.Fatalf("downsampled square wave: sample %d = %d, want near %d", k, s, in)
		}
	}
}

func toneAt(rate int, freq float64, amplitude float64, n int) []int16 {
	pcm := make([]int16, n)
	for k := range pcm {
		pcm[k] = int16(math.Round(amplitude * math.Sin(2*math.Pi*freq*float64(k)/float64(rate))))
	}
	return pcm
}
