package media

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pion/webrtc/v3"
	pionmedia "github.com/pion/webrtc/v3/pkg/media"
)

// defaultLobbyMusic is the music generated for Parley (music/README.md).
//
//go:embed music/lobby.opus
var defaultLobbyMusic []byte

// Lobby music's track and stream IDs, as the participant sees them.
const (
	LobbyStream     = "lobby"
	lobbyMusicTrack = "lobby-music"
)

// maxMusicSize bounds an Ogg Opus file the bridge reads.
const maxMusicSize = 16 << 20

// opusPacket is one Opus packet of a file and how long it plays.
type opusPacket struct {
	data     []byte
	duration time.Duration
}

// readOggOpus returns the audio packets of an Ogg Opus file (RFC 7845):
// one logical stream, an OpusHead and an OpusTags header, then at least
// one audio packet. Every page's checksum is verified.
func readOggOpus(file []byte) ([]opusPacket, error) {
	if len(file) > maxMusicSize {
		return nil, fmt.Errorf("ogg: over %d bytes", maxMusicSize)
	}
	var (
		packets [][]byte
		partial []byte // a packet continued on the next page
		serial  uint32
	)
	for off, page := 0, 0; off < len(file); page++ {
		h := file[off:]
		if len(h) < 27 || !bytes.Equal(h[:4], []byte("OggS")) {
			return nil, fmt.Errorf("ogg: page %d at byte %d: no OggS capture pattern", page, off)
		}
		if h[4] != 0 {
			return nil, fmt.Errorf("ogg: page %d: version %d", page, h[4])
		}
		flags, nsegs := h[5], int(h[26])
		if len(h) < 27+nsegs {
			return nil, fmt.Errorf("ogg: page %d: truncated segment table", page)
		}
		size := 27 + nsegs
		for _, l := range h[27 : 27+nsegs] {
			size += int(l)
		}
		if len(h) < size {
			return nil, fmt.Errorf("ogg: page %d: truncated", page)
		}
		if got, want := oggCRC(h[:size]), binary.LittleEndian.Uint32(h[22:26]); got != want {
			return nil, fmt.Errorf("ogg: page %d: checksum %08x, want %08x", page, got, want)
		}
		s := binary.LittleEndian.Uint32(h[14:18])
		switch {
		case page == 0:
			serial = s
		case s != serial:
			return nil, fmt.Errorf("ogg: page %d: a second logical stream", page)
		}
		if continued := flags&1 != 0; continued != (partial != nil) {
			return nil, fmt.Errorf("ogg: page %d: continuation flag does not match the previous page", page)
		}
		data := h[27+nsegs : size]
		for _, l := range h[27 : 27+nsegs] {
			partial = append(partial, data[:l]...)
			data = data[l:]
			if l < 255 { // the packet ends here
				packets = append(packets, partial)
				partial = nil
			}
		}
		off += size
	}
	if partial != nil {
		return nil, errors.New("ogg: the last packet is truncated")
	}
	if len(packets) < 3 || !bytes.HasPrefix(packets[0], []byte("OpusHead")) || len(packets[0]) < 19 ||
		!bytes.HasPrefix(packets[1], []byte("OpusTags")) {
		return nil, errors.New("ogg: not an Opus stream (OpusHead, OpusTags and audio)")
	}
	if v := packets[0][8]; v>>4 != 0 {
		return nil, fmt.Errorf("ogg: Opus mapping version %d", v)
	}
	out := make([]opusPacket, 0, len(packets)-2)
	for i, p := range packets[2:] {
		d, err := opusDuration(p)
		if err != nil {
			return nil, fmt.Errorf("ogg: audio packet %d: %w", i, err)
		}
		out = append(out, opusPacket{data: p, duration: d})
	}
	return out, nil
}

// opusDuration returns how long an Opus packet plays, from its TOC byte
// and frame count (RFC 6716 section 3.1).
func opusDuration(p []byte) (time.Duration, error) {
	if len(p) == 0 {
		return 0, errors.New("empty Opus packet")
	}
	config := p[0] >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = []time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // hybrid: 10, 20 ms
		frame = []time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
	frames := 1
	switch p[0] & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0, errors.New("a code 3 Opus packet without its frame count")
		}
		frames = int(p[1] & 0x3f)
	}
	d := time.Duration(frames) * frame
	if d == 0 || d > 120*time.Millisecond {
		return 0, fmt.Errorf("an Opus packet of %v", d)
	}
	return d, nil
}

// oggCRC is Ogg's page checksum: CRC-32 with polynomial 0x04c11db7,
// not reflected, over the page with its checksum field taken as zero.
func oggCRC(page []byte) uint32 {
	var crc uint32
	for i, b := range page {
		if i >= 22 && i < 26 {
			b = 0
		}
		crc = crc<<8 ^ oggTable[byte(crc>>24)^b]
	}
	return crc
}

var oggTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// music plays packets, looped, on one track that every waiting
// participant's session sends; it runs until done is closed.
type music struct {
	track   *webrtc.TrackLocalStaticSample
	silence *webrtc.TrackLocalStaticRTP // what an admitted participant's music sender sends: nothing
	packets []opusPacket
}

func newMusic(file []byte) (*music, error) {
	packets, err := readOggOpus(file)
	if err != nil {
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		lobbyMusicTrack, LobbyStream)
	if err != nil {
		return nil, err
	}
	silence, err := webrtc.NewTrackLocalStaticRTP(track.Codec(), lobbyMusicTrack, LobbyStream)
	if err != nil {
		return nil, err
	}
	return &music{track: track, silence: silence, packets: packets}, nil
}

// play sends the packets in real time, from the start again at the end.
// A track bound to no session costs nothing to write.
func (m *music) play(done <-chan struct{}) {
	next := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i = (i + 1) % len(m.packets) {
		select {
		case <-done:
			return
		case <-t.C:
		}
		p := m.packets[i]
		_ = m.track.WriteSample(pionmedia.Sample{Data: p.data, Duration: p.duration})
		next = next.Add(p.duration)
		if late := time.Since(next); late > time.Second {
			next = time.Now() // paused (a suspended machine): do not burst to catch up
		}
		t.Reset(time.Until(next))
	}
}
