package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var (
	// ErrInvalidWAV is wrapped by ReadWAV's errors for data that is not a
	// well-formed WAV file.
	ErrInvalidWAV = errors.New("audio: invalid WAV")
	// ErrUnsupportedWAV is wrapped by ReadWAV's errors for a WAV file in a
	// format other than 16-bit mono PCM.
	ErrUnsupportedWAV = errors.New("audio: unsupported WAV format")
)

const (
	wavHeaderLen = 44
	wavPCM       = 1 // WAVE_FORMAT_PCM
)

// ReadWAV decodes a RIFF/WAVE file of 16-bit mono PCM samples, returning
// the samples and their rate in Hz. Chunks may come in any order; chunks
// other than "fmt " and "data" are skipped, and so is anything after the
// RIFF chunk. Odd-sized chunks are padded to an even size as RIFF wants,
// though a missing final pad byte is tolerated, as is a last odd byte of
// samples. A sample rate of 0 or over 2^20 Hz is refused.
func ReadWAV(data []byte) (pcm []int16, rate int, err error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("%w: no RIFF/WAVE header", ErrInvalidWAV)
	}
	end := len(data)
	if n := uint64(binary.LittleEndian.Uint32(data[4:8])) + 8; n < uint64(end) {
		end = int(n)
	}
	var fmtChunk, dataChunk []byte
	for off := 12; off < end; {
		if end-off < 8 {
			return nil, 0, fmt.Errorf("%w: truncated chunk header at byte %d", ErrInvalidWAV, off)
		}
		id := string(data[off : off+4])
		size := uint64(binary.LittleEndian.Uint32(data[off+4 : off+8]))
		off += 8
		if size > uint64(end-off) {
			return nil, 0, fmt.Errorf("%w: chunk %q of %d bytes truncated to %d", ErrInvalidWAV, id, size, end-off)
		}
		body := data[off : off+int(size)]
		off += int(size) + int(size&1)
		switch {
		case id == "fmt " && fmtChunk == nil:
			fmtChunk = body
		case id == "data" && dataChunk == nil:
			dataChunk = body
		}
	}
	if fmtChunk == nil {
		return nil, 0, fmt.Errorf("%w: no fmt chunk", ErrInvalidWAV)
	}
	if dataChunk == nil {
		return nil, 0, fmt.Errorf("%w: no data chunk", ErrInvalidWAV)
	}
	if len(fmtChunk) < 16 {
		return nil, 0, fmt.Errorf("%w: fmt chunk of %d bytes", ErrInvalidWAV, len(fmtChunk))
	}
	format := binary.LittleEndian.Uint16(fmtChunk[0:2])
	channels := binary.LittleEndian.Uint16(fmtChunk[2:4])
	rate32 := binary.LittleEndian.Uint32(fmtChunk[4:8])
	bitsPerSample := binary.LittleEndian.Uint16(fmtChunk[14:16])
	switch {
	case format != wavPCM:
		return nil, 0, fmt.Errorf("%w: format %#x, not PCM", ErrUnsupportedWAV, format)
	case channels != 1:
		return nil, 0, fmt.Errorf("%w: %d channels, not mono", ErrUnsupportedWAV, channels)
	case bitsPerSample != 16:
		return nil, 0, fmt.Errorf("%w: %d bits per sample, not 16", ErrUnsupportedWAV, bitsPerSample)
	case rate32 == 0 || rate32 > 1<<20:
		return nil, 0, fmt.Errorf("%w: sample rate %d", ErrInvalidWAV, rate32)
	}
	pcm = make([]int16, len(dataChunk)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(dataChunk[2*i:]))
	}
	return pcm, int(rate32), nil
}

// WriteWAV encodes pcm, mono at rate Hz, as a 16-bit PCM WAV file (a
// canonical 44-byte header and the samples). pcm must be shorter than
// 2 GiB.
func WriteWAV(pcm []int16, rate int) []byte {
	n := 2 * len(pcm)
	b := make([]byte, 0, wavHeaderLen+n)
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(wavHeaderLen-8+n))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, wavPCM)
	b = binary.LittleEndian.AppendUint16(b, 1)              // channels
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))   // sample rate
	b = binary.LittleEndian.AppendUint32(b, uint32(2*rate)) // byte rate
	b = binary.LittleEndian.AppendUint16(b, 2)              // block align
	b = binary.LittleEndian.AppendUint16(b, 16)             // bits per sample
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, s := range pcm {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}
