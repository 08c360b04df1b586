package media

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
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

// FuzzParseCrypto: an a=crypto line comes from the caller's offer; it is
// refused, or its key and salt have the suite's lengths and the line the
// bridge would write for them reads back the same.
func FuzzParseCrypto(f *testing.F) {
	for i, s := range suites {
		f.Add(cryptoLine(i+1, s, byte(i), ""))
		f.Add(cryptoLine(i+1, s, byte(i), "|2^31"))
		f.Add(cryptoLine(i+1, s, byte(i), "|2^20|1:4 KDR=0 WSH=64"))
	}
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20;inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0|2^20")
	f.Add("1 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw UNENCRYPTED_SRTP")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseCrypto(v)
		if err != nil {
			return
		}
		if len(c.key) != c.suite.keyLen || len(c.salt) != c.suite.saltLen {
			t.Fatalf("%q: %s key %d bytes salt %d", v, c.suite.name, len(c.key), len(c.salt))
		}
		back, err := parseCrypto(c.String())
		if err != nil {
			t.Fatalf("%q: String() = %q does not parse: %v", v, c.String(), err)
		}
		if back.tag != c.tag || back.suite.name != c.suite.name || !bytes.Equal(back.key, c.key) || !bytes.Equal(back.salt, c.salt) {
			t.Fatalf("%q: String() = %q reads back as %d %s %x %x", v, c.String(), back.tag, back.suite.name, back.key, back.salt)
		}
	})
}

// phoneOffer is an SRTP desk phone's offer: several codecs, two keys (one
// in a suite the bridge refuses), DTMF events, RTCP multiplexing.
const phoneOffer = "v=0\r\n" +
	"o=- 20518 0 IN IP4 203.0.113.40\r\n" +
	"s=SDP data\r\n" +
	"c=IN IP4 203.0.113.40\r\n" +
	"t=0 0\r\n" +
	"m=audio 11780 RTP/SAVP 9 0 8 18 101\r\n" +
	"a=rtpmap:9 G722/8000\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:18 G729/8000\r\n" +
	"a=fmtp:18 annexb=no\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-15\r\n" +
	"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n" +
	"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^31\r\n" +
	"a=ptime:20\r\n" +
	"a=rtcp-mux\r\n" +
	"a=sendrecv\r\n"

// FuzzParseSIPOffer: a SIP participant's offer is refused, or answered
// with SDP that parses, has an m-line for each of the offer's, and holds
// exactly one key when the answered stream is SRTP (none when it is not).
func FuzzParseSIPOffer(f *testing.F) {
	f.Add(phoneOffer, false)
	f.Add(strings.Replace(phoneOffer, "RTP/SAVP", "RTP/AVP", 1), true)
	f.Add(strings.Replace(phoneOffer, "RTP/SAVP", "RTP/AVP", 1), false)
	f.Add(strings.Replace(phoneOffer, "c=IN IP4 203.0.113.40", "c=IN IP6 2001:db8::40", 1), false)
	f.Add(strings.Replace(phoneOffer, "t=0 0\r\n", "t=0 0\r\nm=video 9078 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n", 1)+
		"m=audio 0 RTP/SAVP 0\r\nm=application 5004 UDP/BFCP *\r\n", false)
	f.Add(strings.Replace(phoneOffer, "9 0 8 18 101", "111 0 101", 1)+"a=rtpmap:111 opus/48000/2\r\n", false)
	f.Add(offerSDP(sessionC, audioSAVP(4000, "0",
		"crypto:1 "+cryptoLine(0, suites[3], 1, "")[2:],
		"crypto:2 "+cryptoLine(0, suites[0], 2, "|2^31")[2:])), false)
	f.Add("v=0\r\n", false)
	local := netip.MustParseAddrPort("198.51.100.2:30000")
	f.Fuzz(func(t *testing.T, offer string, plainOK bool) {
		o, err := parseSIPOffer(offer, plainOK)
		if err != nil {
			return
		}
		var in sdp.SessionDescription
		if err := in.Unmarshal([]byte(offer)); err != nil {
			t.Fatalf("an offer pion does not read accepted: %v", err)
		}
		if !o.secure && !plainOK {
			t.Fatal("plain RTP accepted where it is not allowed")
		}
		var key cryptoAttr
		if o.secure {
			key = cryptoAttr{tag: o.crypto.tag, suite: o.crypto.suite, key: make([]byte, o.crypto.suite.keyLen), salt: make([]byte, o.crypto.suite.saltLen)}
		}
		ans, d := answerOf(t, o, local, key) // the checks every answer passes
		if len(d.MediaDescriptions) != len(in.MediaDescriptions) {
			t.Fatalf("the answer has %d m-lines, pion reads %d in the offer\n%s", len(d.MediaDescriptions), len(in.MediaDescriptions), ans)
		}
		keys := strings.Count(ans, "a=crypto:")
		if o.secure != (keys == 1) || keys > 1 {
			t.Fatalf("%d a=crypto lines in the answer to an offer with secure=%v\n%s", keys, o.secure, ans)
		}
		m := d.MediaDescriptions[o.media]
		if o.secure {
			v, _ := m.Attribute("crypto")
			c, err := parseCrypto(v)
			if err != nil || c.tag != o.crypto.tag || c.suite.name != o.crypto.suite.name {
				t.Fatalf("the answer's a=crypto:%s (%v) does not answer tag %d %s", v, err, o.crypto.tag, o.crypto.suite.name)
			}
		}
	})
}

// FuzzParseVP8: VP8 payloads come from publishers and are read for every
// packet; whatever they hold, the descriptor is refused or lies within
// the payload, and rewriting its picture ID and TL0PICIDX changes those
// and nothing else.
func FuzzParseVP8(f *testing.F) {
	f.Add(vp8Payload(0x1234, 7, true, true, 640, 360, []byte("h")), uint16(9), uint8(1))
	f.Add([]byte{0x90, 0xf0, 0x05, 0x09, 0x00, 0x00}, uint16(0x7fff), uint8(255))
	f.Add([]byte{0x10, 0x00}, uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, p []byte, pic uint16, tl0 uint8) {
		d, err := parseVP8(p)
		if err != nil {
			return
		}
		if d.size < 1 || d.size > len(p) {
			t.Fatalf("descriptor of %d bytes in a payload of %d", d.size, len(p))
		}
		dst := make([]byte, len(p)+1)
		n := putVP8(dst, p, &d, pic&0x7fff, tl0)
		got, err := parseVP8(dst[:n])
		if err != nil {
			t.Fatalf("rewritten %x: %v", dst[:n], err)
		}
		want := d
		if d.hasPic {
			want.pic, want.pic15 = pic&0x7fff, true
			if !d.pic15 {
				want.size++
			}
		}
		if d.hasTL0 {
			want.tl0 = tl0
		}
		if got != want || !bytes.Equal(dst[got.size:n], p[d.size:]) {
			t.Fatalf("rewritten %x: %+v, want %+v", dst[:n], got, want)
		}
	})
}
