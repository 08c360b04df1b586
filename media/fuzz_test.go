package media

import (
	"strings"
	"testing"
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
