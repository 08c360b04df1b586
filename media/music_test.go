package media

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The shipped music is 9.6 s of 20 ms Opus packets (and the encoder's
// pre-skip), and a damaged or
// foreign file is refused with an error that says what is wrong, by
// NewBridge too.
func TestLobbyMusicFile(t *testing.T) {
	packets, err := readOggOpus(defaultLobbyMusic)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range packets {
		if p.duration != 20*time.Millisecond {
			t.Fatalf("packet %d plays %v, want 20ms", i, p.duration)
		}
	}
	// 9.6 s of music and the encoder's 312 samples of pre-skip.
	if len(packets) != 481 {
		t.Fatalf("%d packets, want 481", len(packets))
	}

	damaged := bytes.Clone(defaultLobbyMusic)
	damaged[len(damaged)/2] ^= 0x40
	truncated := defaultLobbyMusic[:len(defaultLobbyMusic)-100]
	for name, tc := range map[string]struct {
		file []byte
		want string
	}{
		"damaged":    {damaged, "checksum"},
		"truncated":  {truncated, "truncated"},
		"not ogg":    {[]byte("ID3\x03 an mp3"), "OggS"},
		"empty":      {[]byte{}, "not an Opus stream"},
		"vorbis ogg": {oggPage(t, 0, 2, [][]byte{[]byte("\x01vorbis")}), "not an Opus stream"},
	} {
		if _, err := readOggOpus(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
	e := newEnv(t, time.Time{})
	if _, err := NewBridge(BridgeConfig{Tokens: e.tokens, Meetings: e.focus, UDP: e.udp, LobbyMusic: truncated}); err == nil ||
		!strings.Contains(err.Error(), "LobbyMusic") {
		t.Fatalf("NewBridge with a truncated music file: %v", err)
	}
}

// oggPage builds one Ogg page holding packets (each under 255 bytes).
func oggPage(t *testing.T, seq uint32, flags byte, packets [][]byte) []byte {
	t.Helper()
	h := []byte("OggS\x00")
	h = append(h, flags)
	h = append(h, make([]byte, 8)...)                         // granule position
	h = append(h, 1, 0, 0, 0, byte(seq), 0, 0, 0, 0, 0, 0, 0) // serial, sequence, checksum
	h = append(h, byte(len(packets)))
	var body []byte
	for _, p := range packets {
		h = append(h, byte(len(p)))
		body = append(body, p...)
	}
	page := append(h, body...)
	crc := oggCRC(page)
	page[22], page[23], page[24], page[25] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
	return page
}
