package media

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzOfferFingerprint: offers come from participants before anything
// else is checked; whatever they hold, the fingerprint a token is bound
// to is the one the offer names, or the offer is refused.
func FuzzOfferFingerprint(f *testing.F) {
	fp := "sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
	f.Add("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:" + fp + "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n")
	f.Add("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:" + fp + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 00:11\r\n")
	f.Add("v=0\r\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, offer string) {
		got, err := offerFingerprint(offer)
		if err != nil {
			return
		}
		if got == "" || !strings.Contains(offer, got) {
			t.Fatalf("fingerprint %q is not the offer's", got)
		}
	})
}

// FuzzReadOggOpus: a lobby music file is configuration, read at start;
// whatever it holds, it is refused with an error or yields audio packets
// that each play between 2.5 and 120 ms and are bytes of the file.
func FuzzReadOggOpus(f *testing.F) {
	f.Add(defaultLobbyMusic[:4096])
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, file []byte) {
		packets, err := readOggOpus(file)
		if err != nil {
			return
		}
		if len(packets) == 0 {
			t.Fatal("a file without audio accepted")
		}
		for _, p := range packets {
			if p.duration < 2500*time.Microsecond || p.duration > 120*time.Millisecond {
				t.Fatalf("packet of %v", p.duration)
			}
			if !bytes.Contains(file, p.data[:1]) {
				t.Fatal("a packet byte that is not in the file")
			}
		}
	})
}
