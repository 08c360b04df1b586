package media

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v2"

	"github.com/parleyuc/parley/media/audio"
)

// SIP participants' media is negotiated with SDP offer/answer (RFC 3264)
// and protected with SRTP whose keys travel in the SDP itself (SDES,
// RFC 4568): which is why the SDP must only ever cross TLS. The bridge
// answers an offer's first audio stream; plain RTP (RTP/AVP) is taken only
// where the caller says it may be (a trusted gateway on a network of its
// own).

// suite is an SRTP crypto suite the bridge accepts.
type suite struct {
	name    string
	profile srtp.ProtectionProfile
	keyLen  int // master key
	saltLen int // master salt
}

// suites are the crypto suites the bridge accepts, most preferred first:
// AES-GCM (RFC 7714), then AES counter mode with an 80-bit HMAC-SHA1 tag
// (RFC 6188, RFC 4568). All are FIPS-approved; 32-bit tags and NULL
// ciphers are not offered or accepted.
var suites = []suite{
	{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
	{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
	{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14},
	{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
}

func suiteByName(name string) (suite, bool) {
	for _, s := range suites {
		if s.name == name {
			return s, true
		}
	}
	return suite{}, false
}

// cryptoAttr is one a=crypto line (RFC 4568 section 9.1):
//
//	a=crypto:<tag> <crypto-suite> inline:<key||salt>[|<lifetime>][|<MKI>:<length>] [<session-params>]
type cryptoAttr struct {
	tag   int
	suite suite
	key   []byte // master key
	salt  []byte // master salt
}

// errUnsupportedCrypto marks a well-formed a=crypto line the bridge does
// not take (another suite, several keys, an MKI): the offer may have
// another line it does take.
var errUnsupportedCrypto = errors.New("unsupported crypto attribute")

// parseCrypto reads the value of an a=crypto attribute.
func parseCrypto(v string) (cryptoAttr, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return cryptoAttr{}, errors.New("crypto attribute: want tag, suite and key parameters")
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 || len(f[0]) > 9 {
		return cryptoAttr{}, fmt.Errorf("crypto attribute: bad tag %q", f[0])
	}
	s, ok := suiteByName(f[1])
	if !ok {
		return cryptoAttr{}, fmt.Errorf("%w: suite %q", errUnsupportedCrypto, f[1])
	}
	if strings.Contains(f[2], ";") {
		return cryptoAttr{}, fmt.Errorf("%w: several master keys", errUnsupportedCrypto)
	}
	params, ok := strings.CutPrefix(f[2], "inline:")
	if !ok {
		return cryptoAttr{}, errors.New("crypto attribute: key method is not inline")
	}
	parts := strings.Split(params, "|")
	keySalt, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		// Some offer keys without the base64 padding.
		keySalt, err = base64.RawStdEncoding.DecodeString(parts[0])
	}
	if err != nil {
		return cryptoAttr{}, errors.New("crypto attribute: key is not base64")
	}
	if len(keySalt) != s.keyLen+s.saltLen {
		return cryptoAttr{}, fmt.Errorf("crypto attribute: %s needs %d bytes of key and salt, not %d", s.name, s.keyLen+s.saltLen, len(keySalt))
	}
	for _, p := range parts[1:] {
		switch {
		case strings.Contains(p, ":"):
			return cryptoAttr{}, fmt.Errorf("%w: MKI", errUnsupportedCrypto)
		case strings.HasPrefix(p, "2^"):
			n, err := strconv.Atoi(p[2:])
			if err != nil || n < 1 || n > 48 {
				return cryptoAttr{}, fmt.Errorf("crypto attribute: bad lifetime %q", p)
			}
		default:
			if n, err := strconv.ParseUint(p, 10, 64); err != nil || n == 0 {
				return cryptoAttr{}, fmt.Errorf("crypto attribute: bad lifetime %q", p)
			}
		}
	}
	for _, sp := range f[3:] {
		switch {
		case sp == "UNENCRYPTED_SRTP", sp == "UNENCRYPTED_SRTCP", sp == "UNAUTHENTICATED_SRTP":
			return cryptoAttr{}, fmt.Errorf("%w: %s", errUnsupportedCrypto, sp)
		case strings.HasPrefix(sp, "KDR="):
			if sp != "KDR=0" {
				return cryptoAttr{}, fmt.Errorf("%w: key derivation rate", errUnsupportedCrypto)
			}
		case strings.HasPrefix(sp, "FEC_ORDER="), strings.HasPrefix(sp, "FEC_KEY="):
			return cryptoAttr{}, fmt.Errorf("%w: %s", errUnsupportedCrypto, sp)
		}
		// WSH and unknown session parameters change nothing the bridge does.
	}
	return cryptoAttr{tag: tag, suite: s, key: keySalt[:s.keyLen], salt: keySalt[s.keyLen:]}, nil
}

// newCrypto returns the bridge's own key for suite s, from crypto/rand.
func newCrypto(tag int, s suite) (cryptoAttr, error) {
	buf := make([]byte, s.keyLen+s.saltLen)
	if _, err := rand.Read(buf); err != nil {
		return cryptoAttr{}, err
	}
	return cryptoAttr{tag: tag, suite: s, key: buf[:s.keyLen], salt: buf[s.keyLen:]}, nil
}

// String returns the a=crypto value.
func (c cryptoAttr) String() string {
	keySalt := append(append([]byte(nil), c.key...), c.salt...)
	return strconv.Itoa(c.tag) + " " + c.suite.name + " inline:" + base64.StdEncoding.EncodeToString(keySalt)
}

// Audio codecs a SIP participant may send, as RTP payloads.
const (
	codecPCMU = "PCMU"
	codecPCMA = "PCMA"
	codecOpus = "opus"
)

// rtpFormat is one payload type of the offer the bridge answers.
type rtpFormat struct {
	pt    uint8
	name  string // PCMU, PCMA, opus, telephone-event
	clock uint32
	chans string // "2" for opus
}

// sipOffer is what the bridge takes from a SIP participant's offer.
type sipOffer struct {
	d      sdp.SessionDescription
	media  int            // index of the answered audio stream
	remote netip.AddrPort // where to send until symmetric RTP learns better
	secure bool           // RTP/SAVP
	codec  rtpFormat
	dtmf   *rtpFormat // telephone-event at the codec's clock, if offered
	crypto cryptoAttr // the caller's key, if secure
	// direction is the caller's (sendrecv, sendonly, recvonly, inactive);
	// the answer mirrors it.
	direction string
}

// answerDirection is the direction attribute answering the caller's
// (RFC 3264 section 6.1).
func (o *sipOffer) answerDirection() string {
	switch o.direction {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	}
	return o.direction
}

// sends reports whether the bridge sends the caller media.
func (o *sipOffer) sends() bool {
	d := o.answerDirection()
	return d == "sendrecv" || d == "sendonly"
}

// parseSIPOffer reads a SIP participant's offer: its first audio stream
// with a codec the bridge takes (in the caller's order of preference),
// and, unless plain RTP is allowed and offered, an SRTP key in a suite
// the bridge accepts (its most preferred one the caller offers).
func parseSIPOffer(offer string, plainOK bool) (*sipOffer, error) {
	if len(offer) > maxOfferSize {
		return nil, fmt.Errorf("offer over %d bytes", maxOfferSize)
	}
	o := &sipOffer{media: -1}
	if err := o.d.Unmarshal([]byte(offer)); err != nil {
		return nil, fmt.Errorf("unreadable offer: %v", err)
	}
	var lastErr error
	for i, m := range o.d.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		if err := o.takeAudio(m, plainOK); err != nil {
			lastErr = err
			continue
		}
		o.media = i
		return o, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, errors.New("the offer has no audio stream")
}

// takeAudio fills o from audio stream m, or says why m is refused.
func (o *sipOffer) takeAudio(m *sdp.MediaDescription, plainOK bool) error {
	proto := strings.Join(m.MediaName.Protos, "/")
	switch proto {
	case "RTP/SAVP":
		o.secure = true
	case "RTP/AVP":
		if !plainOK {
			return errors.New("plain RTP refused: media must be SRTP (RTP/SAVP with a=crypto)")
		}
		o.secure = false
	default:
		return fmt.Errorf("transport %s refused: want RTP/SAVP with SDES keys", proto)
	}
	if o.secure {
		var best *cryptoAttr
		var firstErr error
		for _, a := range m.Attributes {
			if a.Key != "crypto" {
				continue
			}
			c, err := parseCrypto(a.Value)
			if err != nil {
				if firstErr == nil || errors.Is(firstErr, errUnsupportedCrypto) {
					firstErr = err
				}
				continue
			}
			if best == nil || suiteRank(c.suite) < suiteRank(best.suite) {
				best = &c
			}
		}
		if best == nil {
			if firstErr == nil {
				firstErr = errors.New("RTP/SAVP without a=crypto")
			}
			return fmt.Errorf("no usable SRTP key: %w", firstErr)
		}
		o.crypto = *best
	}
	formats := map[uint8]rtpFormat{}
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		ptStr, enc, ok := strings.Cut(a.Value, " ")
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if !ok || err != nil {
			continue
		}
		f := rtpFormat{pt: uint8(pt)}
		parts := strings.Split(enc, "/")
		f.name = parts[0]
		if len(parts) > 1 {
			c, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				continue
			}
			f.clock = uint32(c)
		}
		if len(parts) > 2 {
			f.chans = parts[2]
		}
		formats[f.pt] = f
	}
	var codec *rtpFormat
	for _, s := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(s, 10, 7)
		if err != nil {
			continue
		}
		f, ok := formats[uint8(pt)]
		if !ok { // static payload types need no rtpmap (RFC 3551)
			switch pt {
			case 0:
				f = rtpFormat{pt: 0, name: codecPCMU, clock: 8000}
			case 8:
				f = rtpFormat{pt: 8, name: codecPCMA, clock: 8000}
			default:
				continue
			}
		}
		switch {
		case codec == nil && (strings.EqualFold(f.name, codecPCMU) || strings.EqualFold(f.name, codecPCMA)) && f.clock == 8000:
			f.name = strings.ToUpper(f.name)
			codec = &f
		case codec == nil && strings.EqualFold(f.name, codecOpus) && f.clock == 48000 && audio.OpusBuilt:
			f.name = codecOpus
			codec = &f
		}
	}
	if codec == nil {
		takes := "PCMU and PCMA"
		if audio.OpusBuilt {
			takes = "PCMU, PCMA and opus"
		}
		return errors.New("no codec in common: the bridge takes " + takes)
	}
	o.codec = *codec
	o.dtmf = nil
	for _, s := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(s, 10, 7)
		if err != nil {
			continue
		}
		if f, ok := formats[uint8(pt)]; ok && strings.EqualFold(f.name, "telephone-event") && f.clock == o.codec.clock {
			f.name = "telephone-event"
			o.dtmf = &f
			break
		}
	}
	conn := m.ConnectionInformation
	if conn == nil || conn.Address == nil {
		conn = o.d.ConnectionInformation
	}
	addr, addrType := "", ""
	if conn != nil && conn.Address != nil {
		addr, addrType = conn.Address.Address, conn.AddressType
	}
	ip, err := netip.ParseAddr(addr)
	switch {
	case err != nil:
		return fmt.Errorf("the audio stream has no usable connection address %q", addr)
	case ip.Is4() != (addrType == "IP4"):
		return fmt.Errorf("the audio stream's connection address %s is not of type %s", addr, addrType)
	case ip.IsMulticast(), ip.Zone() != "":
		return fmt.Errorf("the audio stream's connection address %s is not a unicast host", addr)
	}
	// 0.0.0.0 (a caller on hold, RFC 3264 section 8.4) gives no address:
	// the bridge sends only once the caller's packets show where it is.
	o.direction = "sendrecv"
	for _, a := range append(append([]sdp.Attribute(nil), o.d.Attributes...), m.Attributes...) { // the media's wins
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			o.direction = a.Key
		}
	}
	port := m.MediaName.Port.Value
	if port <= 0 || port > 65535 {
		return fmt.Errorf("the audio stream's port %d is out of range", port)
	}
	o.remote = netip.AddrPortFrom(ip.Unmap(), uint16(port))
	return nil
}

func suiteRank(s suite) int {
	for i, t := range suites {
		if t.name == s.name {
			return i
		}
	}
	return len(suites)
}

// answer returns the SDP answer: the chosen stream on local's address with
// the bridge's key (if secure) in the caller's chosen suite and tag, every
// other stream refused (port 0).
func (o *sipOffer) answer(local netip.AddrPort, key cryptoAttr, sessionID uint64) string {
	ipVer := "IP4"
	if local.Addr().Is6() {
		ipVer = "IP6"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=parley %d 1 IN %s %s\r\ns=parley\r\nc=IN %s %s\r\nt=0 0\r\n", sessionID, ipVer, local.Addr(), ipVer, local.Addr())
	for i, m := range o.d.MediaDescriptions {
		proto := strings.Join(m.MediaName.Protos, "/")
		if i != o.media {
			fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", m.MediaName.Media, proto, strings.Join(m.MediaName.Formats, " "))
			continue
		}
		fmt.Fprintf(&b, "m=audio %d %s %d", local.Port(), proto, o.codec.pt)
		if o.dtmf != nil {
			fmt.Fprintf(&b, " %d", o.dtmf.pt)
		}
		b.WriteString("\r\n")
		name := o.codec.name
		if name == codecOpus {
			fmt.Fprintf(&b, "a=rtpmap:%d opus/48000/2\r\n", o.codec.pt)
		} else {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/8000\r\n", o.codec.pt, name)
		}
		if o.dtmf != nil {
			fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/%d\r\na=fmtp:%d 0-15\r\n", o.dtmf.pt, o.dtmf.clock, o.dtmf.pt)
		}
		// RTCP comes to the RTP port (RFC 3605), multiplexed (RFC 5761).
		fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\na=rtcp:%d\r\n", o.answerDirection(), local.Port())
		if _, ok := m.Attribute("rtcp-mux"); ok {
			b.WriteString("a=rtcp-mux\r\n")
		}
		if o.secure {
			b.WriteString("a=crypto:" + key.String() + "\r\n")
		}
	}
	return b.String()
}
