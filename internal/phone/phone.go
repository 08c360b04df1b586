// Package phone is a test telephone's media: an SDES-SRTP endpoint
// (RFC 4568) sending PCMU (a tone, or silence) every 20 ms, sending RFC
// 4733 telephone events, and measuring the energy of what it hears. Tests
// use it as a SIP phone's or a PSTN gateway's media against the bridge.
package phone

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v2"

	"github.com/parleyuc/parley/media/audio"
)

// Payload types the phone offers.
const (
	PTPCMU  = 0
	PTEvent = 101
)

// Phone is one call's media.
type Phone struct {
	conn  net.PacketConn
	key   []byte // key||salt, AES_CM_128_HMAC_SHA1_80
	plain bool

	mu       sync.Mutex
	remote   *net.UDPAddr
	tx, rx   *srtp.Context
	freq     float64 // tone sent; 0: silence
	phase    float64
	seq      uint16
	ts       uint32
	heard    []int16 // the last second received
	received int     // packets authenticated and decoded
	forged   int     // packets refused
	dec      audio.Decoder
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

// New opens a phone on a loopback UDP port. plain makes it offer plain
// RTP (RTP/AVP) instead of SRTP.
func New(plain bool) (*Phone, error) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	dec, err := audio.NewDecoder("PCMU")
	if err != nil {
		return nil, err
	}
	p := &Phone{conn: conn, plain: plain, dec: dec, done: make(chan struct{}), key: make([]byte, 30)}
	_, _ = rand.Read(p.key)
	return p, nil
}

// Key is the phone's SRTP master key and salt (AES_CM_128_HMAC_SHA1_80),
// for a test playing an attacker who has it.
func (p *Phone) Key() []byte { return p.key }

// Addr is the phone's RTP address.
func (p *Phone) Addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Offer is the phone's SDP offer: PCMU and telephone events, with an SDES
// key unless plain.
func (p *Phone) Offer() string {
	proto, crypto := "RTP/SAVP", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(p.key)+"\r\n"
	if p.plain {
		proto, crypto = "RTP/AVP", ""
	}
	a := p.Addr()
	return fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d %s %d %d\r\na=rtpmap:%d PCMU/8000\r\na=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-15\r\na=ptime:20\r\na=sendrecv\r\n%s",
		a.Addr(), a.Addr(), a.Port(), proto, PTPCMU, PTEvent, PTPCMU, PTEvent, PTEvent, crypto)
}

// Accept applies the answer and starts sending and receiving.
func (p *Phone) Accept(answer string) error {
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(answer)); err != nil {
		return err
	}
	var m *sdp.MediaDescription
	for _, x := range d.MediaDescriptions {
		if x.MediaName.Media == "audio" && x.MediaName.Port.Value != 0 {
			m = x
		}
	}
	if m == nil || d.ConnectionInformation == nil {
		return errors.New("phone: no audio in the answer")
	}
	ip := net.ParseIP(d.ConnectionInformation.Address.Address)
	p.mu.Lock()
	p.remote = &net.UDPAddr{IP: ip, Port: m.MediaName.Port.Value}
	p.mu.Unlock()
	if !p.plain {
		v, ok := m.Attribute("crypto")
		if !ok {
			return errors.New("phone: no a=crypto in the answer")
		}
		f := strings.Fields(v)
		if len(f) < 3 || f[0] != "1" {
			return fmt.Errorf("phone: crypto %q does not answer tag 1", v)
		}
		var profile srtp.ProtectionProfile
		var keyLen int
		switch f[1] {
		case "AES_CM_128_HMAC_SHA1_80":
			profile, keyLen = srtp.ProtectionProfileAes128CmHmacSha1_80, 16
		default:
			return fmt.Errorf("phone: answered suite %s was not offered", f[1])
		}
		theirs, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f[2], "inline:"))
		if err != nil || len(theirs) != 30 {
			return fmt.Errorf("phone: bad answer key %q", f[2])
		}
		rx, err := srtp.CreateContext(theirs[:keyLen], theirs[keyLen:], profile, srtp.SRTPReplayProtection(64))
		if err != nil {
			return err
		}
		tx, err := srtp.CreateContext(p.key[:16], p.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.rx, p.tx = rx, tx
		p.mu.Unlock()
	}
	p.wg.Add(2)
	go p.send()
	go p.receive()
	return nil
}

// Tone makes the phone send a sine of freq Hz (0: silence).
func (p *Phone) Tone(freq float64) {
	p.mu.Lock()
	p.freq = freq
	p.mu.Unlock()
}

// send sends a frame every 20 ms.
func (p *Phone) send() {
	defer p.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	enc, _ := audio.NewEncoder("PCMU")
	pcm := make([]int16, 0, audio.FrameSamples)
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.mu.Lock()
		pcm = pcm[:0]
		if p.freq > 0 {
			pcm = audio.Tone(pcm, p.freq, 8000, audio.FrameSamples, &p.phase)
		} else {
			pcm = append(pcm, make([]int16, audio.FrameSamples)...)
		}
		payload, _ := enc.Encode(nil, pcm)
		p.writeLocked(PTPCMU, false, payload, audio.FrameSamples)
		p.mu.Unlock()
	}
}

// writeLocked sends one RTP packet.
func (p *Phone) writeLocked(pt uint8, marker bool, payload []byte, step uint32) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: 0x5eed}, Payload: payload}
	p.seq++
	p.ts += step
	raw, err := pkt.Marshal()
	if err != nil {
		return
	}
	if p.tx != nil {
		if raw, err = p.tx.EncryptRTP(nil, raw, &pkt.Header); err != nil {
			return
		}
	}
	_, _ = p.conn.WriteTo(raw, p.remote)
}

// Digits sends keys as RFC 4733 telephone events, one after another.
func (p *Phone) Digits(keys string) error {
	for i := 0; i < len(keys); i++ {
		events, err := audio.DigitEvents(keys[i], 10, 800)
		if err != nil {
			return err
		}
		p.mu.Lock()
		ts := p.ts
		for j, ev := range events {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: PTEvent, Marker: j == 0, SequenceNumber: p.seq, Timestamp: ts, SSRC: 0x5eed},
				Payload: ev.Append(nil)}
			p.seq++
			raw, err := pkt.Marshal()
			if err == nil && p.tx != nil {
				raw, err = p.tx.EncryptRTP(nil, raw, &pkt.Header)
			}
			if err == nil {
				_, _ = p.conn.WriteTo(raw, p.remote)
			}
		}
		p.ts += 800
		p.mu.Unlock()
		time.Sleep(60 * time.Millisecond)
	}
	return nil
}

// receive decodes what arrives, keeping the last second.
func (p *Phone) receive() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		raw := buf[:n]
		if p.rx != nil {
			var h rtp.Header
			out, err := p.rx.DecryptRTP(nil, raw, &h)
			if err != nil {
				p.forged++
				p.mu.Unlock()
				continue
			}
			raw = out
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(raw) == nil && pkt.PayloadType == PTPCMU {
			p.received++
			p.heard, _ = p.dec.Decode(p.heard, pkt.Payload)
			if over := len(p.heard) - audio.Rate; over > 0 {
				p.heard = append(p.heard[:0], p.heard[over:]...)
			}
		}
		p.mu.Unlock()
	}
}

// Heard returns the RMS of the last 200 ms received, and how many packets
// arrived authenticated.
func (p *Phone) Heard() (rms float64, packets int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := p.heard[max(0, len(p.heard)-audio.Rate/5):]
	return audio.RMS(last), p.received
}

// Received returns the last second of audio heard.
func (p *Phone) Received() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int16(nil), p.heard...)
}

// Dominant returns the frequency among candidates with the most energy in
// the last 200 ms heard (Goertzel), and that energy's share of the total.
func (p *Phone) Dominant(candidates ...float64) (float64, float64) {
	pcm := p.Received()
	pcm = pcm[max(0, len(pcm)-audio.Rate/5):]
	best, bestE, total := 0.0, 0.0, 0.0
	for _, f := range candidates {
		e := goertzel(pcm, f)
		total += e
		if e > bestE {
			best, bestE = f, e
		}
	}
	if total == 0 {
		return 0, 0
	}
	return best, bestE / total
}

// Power returns the power of frequency f in pcm at 8 kHz (Goertzel).
func Power(pcm []int16, f float64) float64 { return goertzel(pcm, f) }

func goertzel(pcm []int16, f float64) float64 {
	w := 2 * math.Pi * f / audio.Rate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range pcm {
		s := float64(x) + c*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

// Forged counts packets that failed SRTP authentication.
func (p *Phone) Forged() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forged
}

// Close stops the phone.
func (p *Phone) Close() {
	p.once.Do(func() {
		close(p.done)
		_ = p.conn.Close()
		p.wg.Wait()
	})
}
