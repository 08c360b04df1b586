package media

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"

	"github.com/parleyuc/parley/media/audio"
)

// testKeySalt returns n bytes of key and salt, different for each seed.
func testKeySalt(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)*7
	}
	return b
}

// cryptoLine returns an a=crypto value for suite s with a key and salt
// of the suite's lengths, made from seed, then extra (key parameters).
func cryptoLine(tag int, s suite, seed byte, extra string) string {
	return strconv.Itoa(tag) + " " + s.name + " inline:" + base64.StdEncoding.EncodeToString(testKeySalt(s.keyLen+s.saltLen, seed)) + extra
}

func mustSuite(t testing.TB, name string) suite {
	t.Helper()
	s, ok := suiteByName(name)
	if !ok {
		t.Fatalf("no suite %s", name)
	}
	return s
}

func TestCryptoSuitesTable(t *testing.T) {
	want := []struct {
		name          string
		keyLen, salt  int
		profileKeyLen int
	}{
		{"AEAD_AES_256_GCM", 32, 12, 32},
		{"AEAD_AES_128_GCM", 16, 12, 16},
		{"AES_256_CM_HMAC_SHA1_80", 32, 14, 32},
		{"AES_CM_128_HMAC_SHA1_80", 16, 14, 16},
	}
	if len(suites) != len(want) {
		t.Fatalf("%d suites, want %d", len(suites), len(want))
	}
	for i, w := range want {
		s := suites[i]
		if s.name != w.name || s.keyLen != w.keyLen || s.saltLen != w.salt {
			t.Errorf("suites[%d] = %s %d+%d, want %s %d+%d", i, s.name, s.keyLen, s.saltLen, w.name, w.keyLen, w.salt)
		}
		// The lengths agree with what pion/srtp derives keys from.
		kl, err := s.profile.KeyLen()
		if err != nil || kl != s.keyLen {
			t.Errorf("%s: profile key length %d (%v), suite says %d", s.name, kl, err, s.keyLen)
		}
		sl, err := s.profile.SaltLen()
		if err != nil || sl != s.saltLen {
			t.Errorf("%s: profile salt length %d (%v), suite says %d", s.name, sl, err, s.saltLen)
		}
	}
}

func TestParseCrypto(t *testing.T) {
	gcm256 := mustSuite(t, "AEAD_AES_256_GCM")
	gcm128 := mustSuite(t, "AEAD_AES_128_GCM")
	cm256 := mustSuite(t, "AES_256_CM_HMAC_SHA1_80")
	cm128 := mustSuite(t, "AES_CM_128_HMAC_SHA1_80")
	unpadded := func(s suite, seed byte) string {
		return base64.RawStdEncoding.EncodeToString(testKeySalt(s.keyLen+s.saltLen, seed))
	}
	key30 := base64.StdEncoding.EncodeToString(testKeySalt(30, 1))
	// want: "" accepted; errUnsupported: errors.Is(err, errUnsupportedCrypto);
	// otherwise a substring of a malformed line's error (which must not
	// be errUnsupportedCrypto: a malformed line is reported before an
	// unsupported one).
	const unsupported = "<unsupported>"
	cases := []struct {
		name  string
		value string
		want  string
		suite suite // when accepted
		seed  byte  // of the key, when accepted
		tag   int
	}{
		{"AEAD_AES_256_GCM", cryptoLine(1, gcm256, 1, ""), "", gcm256, 1, 1},
		{"AEAD_AES_128_GCM", cryptoLine(2, gcm128, 2, ""), "", gcm128, 2, 2},
		{"AES_256_CM_HMAC_SHA1_80", cryptoLine(3, cm256, 3, ""), "", cm256, 3, 3},
		{"AES_CM_128_HMAC_SHA1_80", cryptoLine(4, cm128, 4, ""), "", cm128, 4, 4},
		{"unpadded 28 bytes", "1 AEAD_AES_128_GCM inline:" + unpadded(gcm128, 5), "", gcm128, 5, 1},
		{"unpadded 44 bytes", "1 AEAD_AES_256_GCM inline:" + unpadded(gcm256, 6), "", gcm256, 6, 1},
		{"unpadded 46 bytes", "1 AES_256_CM_HMAC_SHA1_80 inline:" + unpadded(cm256, 7), "", cm256, 7, 1},
		{"lifetime 2^31", cryptoLine(1, cm128, 8, "|2^31"), "", cm128, 8, 1},
		{"lifetime 2^48", cryptoLine(1, cm128, 8, "|2^48"), "", cm128, 8, 1},
		{"lifetime decimal", cryptoLine(1, cm128, 9, "|1048576"), "", cm128, 9, 1},
		{"tag 0", cryptoLine(0, cm128, 9, ""), "", cm128, 9, 0},
		{"tag of 9 digits", cryptoLine(999999999, cm128, 9, ""), "", cm128, 9, 999999999},
		{"KDR=0", cryptoLine(1, gcm128, 10, " KDR=0"), "", gcm128, 10, 1},
		{"WSH and an unknown parameter", cryptoLine(1, gcm128, 11, " WSH=128 X-FOO=1"), "", gcm128, 11, 1},
		{"tabs between fields", "7\tAES_CM_128_HMAC_SHA1_80\tinline:" + base64.StdEncoding.EncodeToString(testKeySalt(30, 12)), "", cm128, 12, 7},

		{"MKI", cryptoLine(1, cm128, 1, "|2^20|1:4"), unsupported, suite{}, 0, 0},
		{"MKI without lifetime", cryptoLine(1, cm128, 1, "|1:4"), unsupported, suite{}, 0, 0},
		{"several keys", cryptoLine(1, cm128, 1, "|2^20;inline:"+key30+"|2^20"), unsupported, suite{}, 0, 0},
		{"UNENCRYPTED_SRTP", cryptoLine(1, cm128, 1, " UNENCRYPTED_SRTP"), unsupported, suite{}, 0, 0},
		{"UNENCRYPTED_SRTCP", cryptoLine(1, cm128, 1, " UNENCRYPTED_SRTCP"), unsupported, suite{}, 0, 0},
		{"UNAUTHENTICATED_SRTP", cryptoLine(1, cm128, 1, " UNAUTHENTICATED_SRTP"), unsupported, suite{}, 0, 0},
		{"KDR=5", cryptoLine(1, cm128, 1, " KDR=5"), unsupported, suite{}, 0, 0},
		{"FEC_ORDER", cryptoLine(1, cm128, 1, " FEC_ORDER=FEC_SRTP"), unsupported, suite{}, 0, 0},
		{"32-bit tag", "1 AES_CM_128_HMAC_SHA1_32 inline:" + key30, unsupported, suite{}, 0, 0},
		{"F8", "1 F8_128_HMAC_SHA1_80 inline:" + key30, unsupported, suite{}, 0, 0},
		{"NULL cipher", "1 NULL_HMAC_SHA1_80 inline:" + key30, unsupported, suite{}, 0, 0},
		{"lower-case suite", "1 aes_cm_128_hmac_sha1_80 inline:" + key30, unsupported, suite{}, 0, 0},

		{"too few fields", "1 AES_CM_128_HMAC_SHA1_80", "want tag, suite and key", suite{}, 0, 0},
		{"empty", "", "want tag, suite and key", suite{}, 0, 0},
		{"key too short", "1 AEAD_AES_128_GCM inline:" + key30, "needs 28 bytes", suite{}, 0, 0},
		{"key too long", "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(testKeySalt(31, 1)), "needs 30 bytes", suite{}, 0, 0},
		{"AES-256 key for AES-128", "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(testKeySalt(46, 1)), "not 46", suite{}, 0, 0},
		{"empty key", "1 AES_CM_128_HMAC_SHA1_80 inline:", "needs 30 bytes", suite{}, 0, 0},
		{"not base64", "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!not*base64!!!!", "not base64", suite{}, 0, 0},
		{"base64url", "1 AES_CM_128_HMAC_SHA1_80 inline:" + strings.Repeat("-_", 20), "not base64", suite{}, 0, 0},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/key", "not inline", suite{}, 0, 0},
		{"inline in capitals", "1 AES_CM_128_HMAC_SHA1_80 INLINE:" + key30, "not inline", suite{}, 0, 0},
		{"tag not a number", "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, "bad tag", suite{}, 0, 0},
		{"negative tag", "-1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, "bad tag", suite{}, 0, 0},
		{"tag of 10 digits", "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key30, "bad tag", suite{}, 0, 0},
		{"lifetime 2^0", cryptoLine(1, cm128, 1, "|2^0"), "bad lifetime", suite{}, 0, 0},
		{"lifetime 2^49", cryptoLine(1, cm128, 1, "|2^49"), "bad lifetime", suite{}, 0, 0},
		{"lifetime 0", cryptoLine(1, cm128, 1, "|0"), "bad lifetime", suite{}, 0, 0},
		{"lifetime word", cryptoLine(1, cm128, 1, "|forever"), "bad lifetime", suite{}, 0, 0},
		{"empty lifetime", cryptoLine(1, cm128, 1, "|"), "bad lifetime", suite{}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCrypto(c.value)
			switch c.want {
			case "":
				if err != nil {
					t.Fatalf("parseCrypto(%q): %v", c.value, err)
				}
				ks := testKeySalt(c.suite.keyLen+c.suite.saltLen, c.seed)
				if got.tag != c.tag || got.suite.name != c.suite.name || got.suite.profile != c.suite.profile {
					t.Errorf("tag %d suite %s, want %d %s", got.tag, got.suite.name, c.tag, c.suite.name)
				}
				if !bytes.Equal(got.key, ks[:c.suite.keyLen]) || !bytes.Equal(got.salt, ks[c.suite.keyLen:]) {
					t.Errorf("key %x salt %x, want %x", got.key, got.salt, ks)
				}
			case unsupported:
				if !errors.Is(err, errUnsupportedCrypto) {
					t.Fatalf("parseCrypto(%q) = %v, want errUnsupportedCrypto", c.value, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("parseCrypto(%q) = %v, want an error with %q", c.value, err, c.want)
				}
				if errors.Is(err, errUnsupportedCrypto) {
					t.Fatalf("parseCrypto(%q) = %v: a malformed line is not an unsupported one", c.value, err)
				}
			}
		})
	}
}

func TestCryptoStringRoundTrip(t *testing.T) {
	for _, s := range suites {
		for _, tag := range []int{0, 1, 42, 999999999} {
			c, err := newCrypto(tag, s)
			if err != nil {
				t.Fatal(err)
			}
			v := c.String()
			if !strings.HasPrefix(v, strconv.Itoa(tag)+" "+s.name+" inline:") {
				t.Errorf("String() = %q", v)
			}
			got, err := parseCrypto(v)
			if err != nil {
				t.Fatalf("parseCrypto(%q): %v", v, err)
			}
			if got.tag != tag || got.suite.name != s.name || !bytes.Equal(got.key, c.key) || !bytes.Equal(got.salt, c.salt) {
				t.Errorf("%s: round trip of %q gave %d %s %x %x", s.name, v, got.tag, got.suite.name, got.key, got.salt)
			}
		}
	}
}

func TestNewCryptoKeys(t *testing.T) {
	for _, s := range suites {
		a, err := newCrypto(3, s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := newCrypto(3, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []cryptoAttr{a, b} {
			if len(c.key) != s.keyLen || len(c.salt) != s.saltLen || c.tag != 3 || c.suite.name != s.name {
				t.Fatalf("%s: key %d bytes, salt %d, tag %d, suite %s", s.name, len(c.key), len(c.salt), c.tag, c.suite.name)
			}
			if bytes.Equal(c.key, make([]byte, s.keyLen)) {
				t.Fatalf("%s: all-zero key", s.name)
			}
		}
		if bytes.Equal(a.key, b.key) || bytes.Equal(a.salt, b.salt) {
			t.Fatalf("%s: two calls gave the same key or salt", s.name)
		}
	}
}

// offerSDP builds an offer from a session part and media sections.
func offerSDP(session string, media ...string) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n")
	b.WriteString(session)
	b.WriteString("t=0 0\r\n")
	for _, m := range media {
		b.WriteString(m)
	}
	return b.String()
}

const sessionC = "c=IN IP4 192.0.2.1\r\n"

// audioSAVP is an SRTP audio section on port with the formats and
// attributes given (its keys among them).
func audioSAVP(port int, formats string, attrs ...string) string {
	s := fmt.Sprintf("m=audio %d RTP/SAVP %s\r\n", port, formats)
	for _, a := range attrs {
		s += "a=" + a + "\r\n"
	}
	return s
}

func cm128Crypto(tag int) string {
	s, _ := suiteByName("AES_CM_128_HMAC_SHA1_80")
	return "crypto:" + cryptoLine(tag, s, byte(tag), "")
}

func TestSIPOfferChoosesMostPreferredSuite(t *testing.T) {
	// A caller that lists AES_CM_128 first with tag 1, GCM-256
	// second with tag 2.
	gcm256 := mustSuite(t, "AEAD_AES_256_GCM")
	o, err := parseSIPOffer(offerSDP(sessionC, audioSAVP(4000, "0",
		"crypto:"+cryptoLine(1, mustSuite(t, "AES_CM_128_HMAC_SHA1_80"), 1, "|2^31"),
		"crypto:"+cryptoLine(2, gcm256, 2, "|2^31"))), false)
	if err != nil {
		t.Fatal(err)
	}
	if o.crypto.tag != 2 || o.crypto.suite.name != gcm256.name {
		t.Fatalf("chose tag %d %s, want tag 2 %s", o.crypto.tag, o.crypto.suite.name, gcm256.name)
	}
	if ks := testKeySalt(44, 2); !bytes.Equal(o.crypto.key, ks[:32]) || !bytes.Equal(o.crypto.salt, ks[32:]) {
		t.Fatal("the chosen suite's key is not the one its line holds")
	}

	// Every non-empty subset of the suites, in every rotation: the most
	// preferred is chosen, with its own tag.
	for mask := 1; mask < 1<<len(suites); mask++ {
		var offered []int // indexes in suites
		for i := range suites {
			if mask&(1<<i) != 0 {
				offered = append(offered, i)
			}
		}
		for rot := range offered {
			var attrs []string
			for j := range offered {
				i := offered[(j+rot)%len(offered)]
				attrs = append(attrs, "crypto:"+cryptoLine(10+i, suites[i], byte(i), ""))
			}
			o, err := parseSIPOffer(offerSDP(sessionC, audioSAVP(4000, "0", attrs...)), false)
			if err != nil {
				t.Fatal(err)
			}
			best := offered[0] // offered is in order of preference
			if o.crypto.tag != 10+best || o.crypto.suite.name != suites[best].name {
				t.Errorf("offered %v rotated %d: chose tag %d %s, want %d %s", offered, rot, o.crypto.tag, o.crypto.suite.name, 10+best, suites[best].name)
			}
		}
	}
}

func TestSIPOfferCryptoLines(t *testing.T) {
	cm128 := mustSuite(t, "AES_CM_128_HMAC_SHA1_80")
	cases := []struct {
		name    string
		attrs   []string
		wantTag int    // when accepted
		wantErr string // else
	}{
		{"unsupported lines before a usable one", []string{
			"crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + base64.StdEncoding.EncodeToString(testKeySalt(30, 1)),
			"crypto:2 " + cryptoLine(0, cm128, 2, "|2^20|1:4")[2:],
			"crypto:3 " + cryptoLine(0, cm128, 3, "")[2:],
		}, 3, ""},
		{"a malformed line before a usable one", []string{
			"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
			"crypto:2 " + cryptoLine(0, cm128, 2, "")[2:],
		}, 2, ""},
		{"equal suites: the first", []string{cm128Crypto(5), cm128Crypto(6)}, 5, ""},
		{"only unsupported", []string{"crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + base64.StdEncoding.EncodeToString(testKeySalt(30, 1))}, 0, "unsupported"},
		{"a malformed line is reported before an unsupported one", []string{
			"crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + base64.StdEncoding.EncodeToString(testKeySalt(30, 1)),
			"crypto:2 AES_CM_128_HMAC_SHA1_80 inline:!!!",
		}, 0, "not base64"},
		{"no a=crypto", []string{"x-crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x"}, 0, "without a=crypto"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseSIPOffer(offerSDP(sessionC, audioSAVP(4000, "0", c.attrs...)), false)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "no usable SRTP key") {
					t.Fatalf("err = %v, want one with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.crypto.tag != c.wantTag {
				t.Fatalf("chose tag %d, want %d", o.crypto.tag, c.wantTag)
			}
		})
	}
}

func TestSIPOfferCodecs(t *testing.T) {
	crypto := cm128Crypto(1)
	opusOr := func(opus, other string) string {
		if audio.OpusBuilt {
			return opus
		}
		return other
	}
	cases := []struct {
		name     string
		formats  string
		attrs    []string
		codec    string // "" when refused
		pt       uint8
		clock    uint32
		dtmf     int // payload type, -1 for none
		wantErrs string
	}{
		{"PCMA first", "8 0", []string{"rtpmap:8 PCMA/8000", "rtpmap:0 PCMU/8000"}, codecPCMA, 8, 8000, -1, ""},
		{"PCMU first", "0 8", []string{"rtpmap:0 PCMU/8000", "rtpmap:8 PCMA/8000"}, codecPCMU, 0, 8000, -1, ""},
		{"static payload types without rtpmap", "8 0", nil, codecPCMA, 8, 8000, -1, ""},
		{"an unknown codec first", "18 9 0", []string{"rtpmap:18 G729/8000", "rtpmap:9 G722/8000"}, codecPCMU, 0, 8000, -1, ""},
		{"a dynamic payload type for PCMU", "97 8", []string{"rtpmap:97 pcmu/8000"}, codecPCMU, 97, 8000, -1, ""},
		{"PCMU at another clock", "0 8", []string{"rtpmap:0 PCMU/16000"}, codecPCMA, 8, 8000, -1, ""},
		{"opus first", "111 8 0 101", []string{"rtpmap:111 opus/48000/2", "rtpmap:101 telephone-event/8000"},
			opusOr(codecOpus, codecPCMA), uint8(map[bool]int{true: 111, false: 8}[audio.OpusBuilt]), uint32(map[bool]int{true: 48000, false: 8000}[audio.OpusBuilt]),
			map[bool]int{true: -1, false: 101}[audio.OpusBuilt], ""},
		{"opus with events at its clock", "111 0 101 102", []string{"rtpmap:111 OPUS/48000/2", "rtpmap:101 telephone-event/48000", "rtpmap:102 telephone-event/8000"},
			opusOr(codecOpus, codecPCMU), uint8(map[bool]int{true: 111, false: 0}[audio.OpusBuilt]), uint32(map[bool]int{true: 48000, false: 8000}[audio.OpusBuilt]),
			map[bool]int{true: 101, false: 102}[audio.OpusBuilt], ""},
		{"opus at another clock", "112 8", []string{"rtpmap:112 opus/8000"}, codecPCMA, 8, 8000, -1, ""},
		{"events at the codec's clock only", "0 101 102", []string{"rtpmap:101 telephone-event/48000", "rtpmap:102 telephone-event/8000", "fmtp:102 0-16"}, codecPCMU, 0, 8000, 102, ""},
		{"events at another clock only", "0 101", []string{"rtpmap:101 telephone-event/16000"}, codecPCMU, 0, 8000, -1, ""},
		{"events with an rtpmap but not on the m-line", "0", []string{"rtpmap:101 telephone-event/8000"}, codecPCMU, 0, 8000, -1, ""},
		{"first events payload type of two", "0 101 100", []string{"rtpmap:100 telephone-event/8000", "rtpmap:101 telephone-event/8000"}, codecPCMU, 0, 8000, 101, ""},
		{"no codec in common", "18 9", []string{"rtpmap:18 G729/8000"}, "", 0, 0, -1, "no codec in common"},
		{"only opus", "111", []string{"rtpmap:111 opus/48000/2"}, opusOr(codecOpus, ""), 111, 48000, -1, opusOr("", "no codec in common")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseSIPOffer(offerSDP(sessionC, audioSAVP(4000, c.formats, append(c.attrs, crypto)...)), false)
			if c.codec == "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrs) {
					t.Fatalf("err = %v, want %q", err, c.wantErrs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.codec.name != c.codec || o.codec.pt != c.pt || o.codec.clock != c.clock {
				t.Fatalf("codec %+v, want %s pt %d at %d", o.codec, c.codec, c.pt, c.clock)
			}
			switch {
			case c.dtmf < 0 && o.dtmf != nil:
				t.Fatalf("telephone-event %+v, want none", *o.dtmf)
			case c.dtmf >= 0 && (o.dtmf == nil || int(o.dtmf.pt) != c.dtmf || o.dtmf.clock != o.codec.clock):
				t.Fatalf("telephone-event %+v, want pt %d at %d", o.dtmf, c.dtmf, o.codec.clock)
			}
		})
	}
}

func TestSIPOfferStreamsAndAddresses(t *testing.T) {
	crypto := cm128Crypto(1)
	cases := []struct {
		name    string
		offer   string
		plainOK bool
		media   int
		remote  string
		secure  bool
		wantErr string
	}{
		{"session-level c=", offerSDP(sessionC, audioSAVP(4000, "0", crypto)), false, 0, "192.0.2.1:4000", true, ""},
		{"media-level c= wins", offerSDP(sessionC, audioSAVP(4000, "0", crypto)+"c=IN IP4 198.51.100.7\r\n"), false, 0, "198.51.100.7:4000", true, ""},
		{"media-level c= only", offerSDP("", "m=audio 4000 RTP/SAVP 0\r\nc=IN IP4 198.51.100.7\r\na="+crypto+"\r\n"), false, 0, "198.51.100.7:4000", true, ""},
		{"no c= at all", offerSDP("", audioSAVP(4000, "0", crypto)), false, 0, "", true, "no usable connection address"},
		{"a host name", offerSDP("c=IN IP4 phone.example.com\r\n", audioSAVP(4000, "0", crypto)), false, 0, "", true, "no usable connection address"},
		{"multicast with a TTL", offerSDP("c=IN IP4 224.2.1.1/127\r\n", audioSAVP(4000, "0", crypto)), false, 0, "", true, "no usable connection address"},
		{"IPv6", offerSDP("c=IN IP6 2001:db8::7\r\n", audioSAVP(4000, "0", crypto)), false, 0, "[2001:db8::7]:4000", true, ""},
		{"IPv4-mapped IPv6", offerSDP("c=IN IP6 ::ffff:192.0.2.9\r\n", audioSAVP(4000, "0", crypto)), false, 0, "192.0.2.9:4000", true, ""},
		{"video before audio", offerSDP(sessionC, "m=video 5000 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\na="+crypto+"\r\n", audioSAVP(4002, "0", crypto)), false, 1, "192.0.2.1:4002", true, ""},
		{"port-0 audio skipped", offerSDP(sessionC, audioSAVP(0, "0", crypto), audioSAVP(4004, "8", crypto)), false, 1, "192.0.2.1:4004", true, ""},
		{"refused audio skipped", offerSDP(sessionC, audioSAVP(4000, "18", crypto), audioSAVP(4006, "0", crypto)), false, 1, "192.0.2.1:4006", true, ""},
		{"only the first usable audio", offerSDP(sessionC, audioSAVP(4000, "0", crypto), audioSAVP(4008, "0", crypto)), false, 0, "192.0.2.1:4000", true, ""},
		{"port out of range", offerSDP(sessionC, audioSAVP(65536, "0", crypto)), false, 0, "", true, "out of range"},
		{"plain RTP refused", offerSDP(sessionC, "m=audio 4000 RTP/AVP 0\r\n"), false, 0, "", false, "plain RTP refused"},
		{"plain RTP allowed", offerSDP(sessionC, "m=audio 4000 RTP/AVP 0\r\n"), true, 0, "192.0.2.1:4000", false, ""},
		{"SRTP when plain is allowed", offerSDP(sessionC, audioSAVP(4000, "0", crypto)), true, 0, "192.0.2.1:4000", true, ""},
		{"SRTP without a key when plain is allowed", offerSDP(sessionC, audioSAVP(4000, "0")), true, 0, "", true, "without a=crypto"},
		{"DTLS-SRTP", offerSDP(sessionC, "m=audio 4000 UDP/TLS/RTP/SAVPF 111\r\n"), true, 0, "", true, "want RTP/SAVP"},
		{"RTP/SAVPF", offerSDP(sessionC, "m=audio 4000 RTP/SAVPF 0\r\na="+crypto+"\r\n"), true, 0, "", true, "want RTP/SAVP"},
		{"video only", offerSDP(sessionC, "m=video 4000 RTP/SAVP 96\r\n"), false, 0, "", true, "no audio"},
		{"audio at port 0 only", offerSDP(sessionC, audioSAVP(0, "0", crypto)), false, 0, "", true, "no audio"},
		{"unreadable", "v=0\r\nm=audio 4000 RTP/SAVP 0\r\n", false, 0, "", true, "unreadable offer"},
		{"too large", offerSDP(sessionC, audioSAVP(4000, "0", crypto, "x-pad:"+strings.Repeat("a", maxOfferSize))), false, 0, "", true, "offer over"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseSIPOffer(c.offer, c.plainOK)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.media != c.media || o.remote.String() != c.remote || o.secure != c.secure {
				t.Fatalf("media %d remote %s secure %v, want %d %s %v", o.media, o.remote, o.secure, c.media, c.remote, c.secure)
			}
		})
	}
}

// answerOf parses o's answer with pion and checks what every answer
// holds; it returns the parsed answer.
func answerOf(t *testing.T, o *sipOffer, local netip.AddrPort, key cryptoAttr) (string, *sdp.SessionDescription) {
	t.Helper()
	ans := o.answer(local, key, 4242)
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(ans)); err != nil {
		t.Fatalf("the answer does not parse: %v\n%s", err, ans)
	}
	if len(d.MediaDescriptions) != len(o.d.MediaDescriptions) {
		t.Fatalf("the answer has %d m-lines, the offer %d\n%s", len(d.MediaDescriptions), len(o.d.MediaDescriptions), ans)
	}
	if d.Origin.SessionID != 4242 {
		t.Errorf("o= session id %d, want 4242", d.Origin.SessionID)
	}
	if d.ConnectionInformation == nil || d.ConnectionInformation.Address == nil || d.ConnectionInformation.Address.Address != local.Addr().String() {
		t.Errorf("c= %+v, want %s", d.ConnectionInformation, local.Addr())
	}
	for i, m := range d.MediaDescriptions {
		om := o.d.MediaDescriptions[i]
		if m.MediaName.Media != om.MediaName.Media || strings.Join(m.MediaName.Protos, "/") != strings.Join(om.MediaName.Protos, "/") {
			t.Errorf("m-line %d is %s %v, the offer's %s %v", i, m.MediaName.Media, m.MediaName.Protos, om.MediaName.Media, om.MediaName.Protos)
		}
		if i != o.media {
			if m.MediaName.Port.Value != 0 {
				t.Errorf("refused m-line %d has port %d", i, m.MediaName.Port.Value)
			}
			if len(m.Attributes) != 0 {
				t.Errorf("refused m-line %d has attributes %v", i, m.Attributes)
			}
			continue
		}
		if m.MediaName.Port.Value != int(local.Port()) {
			t.Errorf("chosen m-line on port %d, want %d", m.MediaName.Port.Value, local.Port())
		}
		want := []string{strconv.Itoa(int(o.codec.pt))}
		if o.dtmf != nil {
			want = append(want, strconv.Itoa(int(o.dtmf.pt)))
		}
		if strings.Join(m.MediaName.Formats, " ") != strings.Join(want, " ") {
			t.Errorf("chosen m-line formats %v, want %v", m.MediaName.Formats, want)
		}
		var rtpmaps []string
		for _, a := range m.Attributes {
			if a.Key == "rtpmap" {
				rtpmaps = append(rtpmaps, a.Value)
			}
		}
		if len(rtpmaps) != len(want) {
			t.Errorf("rtpmaps %v for formats %v", rtpmaps, want)
		}
		for j, r := range rtpmaps {
			if j < len(want) && !strings.HasPrefix(r, want[j]+" ") {
				t.Errorf("rtpmap %q is not for payload type %s", r, want[j])
			}
		}
	}
	return ans, &d
}

func TestSIPAnswer(t *testing.T) {
	gcm128 := mustSuite(t, "AEAD_AES_128_GCM")
	offerKey := cryptoLine(7, gcm128, 7, "|2^31")
	local := netip.MustParseAddrPort("203.0.113.5:40000")
	offer := offerSDP(sessionC,
		"m=video 5000 RTP/SAVP 96 97\r\na=rtpmap:96 H264/90000\r\na="+cm128Crypto(1)+"\r\n",
		audioSAVP(0, "0", cm128Crypto(1)),
		audioSAVP(4000, "18 8 0 101", "rtpmap:18 G729/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-16", "rtcp-mux", "crypto:"+offerKey, cm128Crypto(1)),
		"m=application 5004 UDP/BFCP *\r\n",
	)
	o, err := parseSIPOffer(offer, false)
	if err != nil {
		t.Fatal(err)
	}
	if o.media != 2 || o.codec.name != codecPCMA || o.dtmf == nil || o.dtmf.pt != 101 {
		t.Fatalf("media %d codec %+v dtmf %+v", o.media, o.codec, o.dtmf)
	}
	key, err := newCrypto(o.crypto.tag, o.crypto.suite)
	if err != nil {
		t.Fatal(err)
	}
	ans, d := answerOf(t, o, local, key)
	m := d.MediaDescriptions[2]
	if strings.Join(m.MediaName.Formats, " ") != "8 101" {
		t.Fatalf("formats %v, want 8 101", m.MediaName.Formats)
	}
	var attrs []string
	for _, a := range m.Attributes {
		attrs = append(attrs, a.String())
	}
	for _, want := range []string{"rtpmap:8 PCMA/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-15", "rtcp:40000", "rtcp-mux", "sendrecv", "ptime:20"} {
		if !slices.Contains(attrs, want) {
			t.Errorf("a=%s missing\n%s", want, ans)
		}
	}
	if strings.Count(ans, "a=crypto:") != 1 {
		t.Fatalf("%d a=crypto lines, want 1\n%s", strings.Count(ans, "a=crypto:"), ans)
	}
	v, _ := m.Attribute("crypto")
	c, err := parseCrypto(v)
	if err != nil {
		t.Fatalf("the answer's a=crypto:%s: %v", v, err)
	}
	if c.tag != 7 || c.suite.name != gcm128.name {
		t.Fatalf("answered tag %d %s, want 7 %s", c.tag, c.suite.name, gcm128.name)
	}
	if !bytes.Equal(c.key, key.key) || !bytes.Equal(c.salt, key.salt) {
		t.Fatal("the answer's key is not the bridge's")
	}
	if bytes.Equal(c.key, o.crypto.key) || bytes.Equal(c.salt, o.crypto.salt) {
		t.Fatal("the answer sends the offerer's own key back")
	}
	if strings.Contains(ans, base64.StdEncoding.EncodeToString(append(append([]byte(nil), o.crypto.key...), o.crypto.salt...))) {
		t.Fatal("the offerer's key appears in the answer")
	}
	if d.MediaDescriptions[0].MediaName.Media != "video" || d.MediaDescriptions[3].MediaName.Media != "application" ||
		strings.Join(d.MediaDescriptions[3].MediaName.Formats, " ") != "*" {
		t.Fatalf("refused m-lines not echoed:\n%s", ans)
	}
}

func TestSIPAnswerWithoutRTCPMux(t *testing.T) {
	o, err := parseSIPOffer(offerSDP(sessionC, audioSAVP(4000, "0", cm128Crypto(3))), false)
	if err != nil {
		t.Fatal(err)
	}
	key, err := newCrypto(o.crypto.tag, o.crypto.suite)
	if err != nil {
		t.Fatal(err)
	}
	ans, d := answerOf(t, o, netip.MustParseAddrPort("203.0.113.5:40002"), key)
	if _, ok := d.MediaDescriptions[0].Attribute("rtcp-mux"); ok {
		t.Fatalf("a=rtcp-mux answered to an offer without it\n%s", ans)
	}
	if _, ok := d.MediaDescriptions[0].Attribute("telephone-event"); ok || strings.Contains(ans, "telephone-event") {
		t.Fatalf("telephone-event answered to an offer without it\n%s", ans)
	}
	// Session-level rtcp-mux is not a media-level offer of it.
	o, err = parseSIPOffer(strings.Replace(offerSDP(sessionC, audioSAVP(4000, "0", cm128Crypto(3))), "t=0 0\r\n", "t=0 0\r\na=rtcp-mux\r\n", 1), false)
	if err != nil {
		t.Fatal(err)
	}
	if ans := o.answer(netip.MustParseAddrPort("203.0.113.5:40002"), key, 1); strings.Contains(ans, "rtcp-mux") {
		t.Fatalf("a=rtcp-mux answered to a session-level one\n%s", ans)
	}
}

func TestSIPAnswerPlainAndIPv6(t *testing.T) {
	o, err := parseSIPOffer(offerSDP("c=IN IP6 2001:db8::7\r\n", "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	local := netip.MustParseAddrPort("[2001:db8::5]:40004")
	ans, d := answerOf(t, o, local, cryptoAttr{})
	if strings.Contains(ans, "crypto") {
		t.Fatalf("a plain answer with a key\n%s", ans)
	}
	if d.ConnectionInformation.AddressType != "IP6" || d.Origin.AddressType != "IP6" {
		t.Fatalf("c= %+v o= %+v, want IP6", d.ConnectionInformation, d.Origin)
	}
	if got := strings.Join(d.MediaDescriptions[0].MediaName.Protos, "/"); got != "RTP/AVP" {
		t.Fatalf("proto %s, want RTP/AVP", got)
	}
	if _, ok := d.MediaDescriptions[0].Attribute("rtcp-mux"); !ok {
		t.Fatalf("a=rtcp-mux offered and not answered\n%s", ans)
	}
}

func TestSIPAnswerOpus(t *testing.T) {
	if !audio.OpusBuilt {
		t.Skip("built without opus: go test -tags opus, with libopus (Debian: apt-get install libopus-dev libopusfile-dev pkg-config)")
	}
	o, err := parseSIPOffer(offerSDP(sessionC, audioSAVP(4000, "111 0 101 102", "rtpmap:111 opus/48000/2", "rtpmap:101 telephone-event/48000", "rtpmap:102 telephone-event/8000", cm128Crypto(1))), false)
	if err != nil {
		t.Fatal(err)
	}
	key, err := newCrypto(o.crypto.tag, o.crypto.suite)
	if err != nil {
		t.Fatal(err)
	}
	ans, d := answerOf(t, o, netip.MustParseAddrPort("203.0.113.5:40006"), key)
	m := d.MediaDescriptions[0]
	if strings.Join(m.MediaName.Formats, " ") != "111 101" || !strings.Contains(ans, "a=rtpmap:111 opus/48000/2\r\n") || !strings.Contains(ans, "a=rtpmap:101 telephone-event/48000\r\n") {
		t.Fatalf("opus answer:\n%s", ans)
	}
}

// A desk phone's offer (the fuzz test's seed): G.722 and G.729 are
// skipped for PCMU, the 32-bit-tag key for the 80-bit one.
func TestSIPOfferDeskPhone(t *testing.T) {
	o, err := parseSIPOffer(phoneOffer, false)
	if err != nil {
		t.Fatal(err)
	}
	if o.codec.name != codecPCMU || o.codec.pt != 0 || o.dtmf == nil || o.dtmf.pt != 101 ||
		o.crypto.tag != 1 || o.crypto.suite.name != "AES_CM_128_HMAC_SHA1_80" || o.remote.String() != "203.0.113.40:11780" {
		t.Fatalf("codec %+v dtmf %+v crypto %d %s remote %s", o.codec, o.dtmf, o.crypto.tag, o.crypto.suite.name, o.remote)
	}
	key, err := newCrypto(o.crypto.tag, o.crypto.suite)
	if err != nil {
		t.Fatal(err)
	}
	ans, _ := answerOf(t, o, netip.MustParseAddrPort("198.51.100.2:30000"), key)
	if !strings.Contains(ans, "a=rtcp-mux\r\n") || !strings.Contains(ans, "m=audio 30000 RTP/SAVP 0 101\r\n") {
		t.Fatalf("answer:\n%s", ans)
	}
}

// The answer mirrors the caller's direction (RFC 3264 section 6.1), and
// the bridge sends only where the caller will receive; a multicast or
// scoped connection address is refused, and 0.0.0.0 (hold) names none.
func TestSIPOfferDirectionAndAddress(t *testing.T) {
	local := netip.MustParseAddrPort("192.0.2.1:40000")
	for _, c := range []struct {
		attr, want string
		sends      bool
	}{{"", "a=sendrecv", true}, {"a=sendonly\r\n", "a=recvonly", false}, {"a=recvonly\r\n", "a=sendonly", true}, {"a=inactive\r\n", "a=inactive", false}} {
		o, err := parseSIPOffer(phoneOffer+c.attr, false)
		if err != nil {
			t.Fatal(err)
		}
		if a := o.answer(local, o.crypto, 1); !strings.Contains(a, c.want+"\r\n") || o.sends() != c.sends {
			t.Errorf("offer with %q: answer\n%s\nsends %v, want %s and %v", c.attr, a, o.sends(), c.want, c.sends)
		}
	}
	for _, c := range []struct{ conn, want string }{
		{"IN IP4 224.0.0.1", "not a unicast host"},
		{"IN IP6 fe80::1%eth0", "not a unicast host"},
		{"IN IP4 2001:db8::1", "not of type IP4"},
		{"IN IP6 192.0.2.1", "not of type IP6"},
	} {
		if _, err := parseSIPOffer(strings.ReplaceAll(phoneOffer, "c=IN IP4 203.0.113.40", "c="+c.conn), false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("connection %s: %v, want %q", c.conn, err, c.want)
		}
	}
	o, err := parseSIPOffer(strings.ReplaceAll(phoneOffer, "c=IN IP4 203.0.113.40", "c=IN IP4 0.0.0.0"), false)
	if err != nil || !o.remote.Addr().IsUnspecified() {
		t.Fatalf("an offer on hold: %v %v", o, err)
	}
}
