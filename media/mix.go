package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/media/audio"
)

// CallStream is the stream ID (msid) of the track on which WebRTC
// participants hear a meeting's SIP participants, mixed.
const CallStream = "calls"

// mixer mixes a meeting's audio for its SIP participants. Every 20 ms it
// takes a frame from each call and from each WebRTC participant's audio
// (decoded from Opus), sends every call the mix of everyone but itself,
// and sends the WebRTC participants the mix of the calls on one track
// (they hear each other through the SFU). A muted participant's audio is
// not mixed. It runs while the meeting has calls.
type mixer struct {
	r    *room
	stop chan struct{}
	m    *audio.Mixer

	mu    sync.Mutex
	calls []*Call
	webs  map[*forward]*source

	// The calls' mix for WebRTC participants (nil without Opus).
	out    *forward
	enc    audio.Encoder
	outPkt rtp.Packet
	outBuf []byte

	// Scratch, reused every tick.
	callsNow []*Call
	websNow  []*forward
	srcNow   []*source
	frames   [][]int16
	ins      [][]int16
	outs     [][]int16 // one frame per source
	listen   [][]int16 // outs for the calls, nil for the others
	callMix  []int16
}

func newMixer(r *room) *mixer {
	m := &mixer{r: r, stop: make(chan struct{}), m: audio.NewMixer(), webs: map[*forward]*source{},
		callMix: make([]int16, audio.FrameSamples)}
	enc, err := audio.NewEncoder(codecOpus)
	if err != nil {
		if !errors.Is(err, audio.ErrNoOpus) {
			r.b.log.Warn("media: no Opus encoder: WebRTC participants will not hear the calls", "err", err)
		}
		return m
	}
	local, err := webrtc.NewTrackLocalStaticRTP(opusCapability, "calls-audio", CallStream)
	if err != nil {
		return m
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	m.enc = enc
	m.out = &forward{kind: KindAudio, local: local, stopped: make(chan struct{})}
	m.outPkt.Header = rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: binary.BigEndian.Uint16(b[:2]), Timestamp: binary.BigEndian.Uint32(b[2:])}
	m.outBuf = make([]byte, 0, 1500)
	return m
}

// run mixes until the meeting has no calls or ends.
func (m *mixer) run() {
	t := time.NewTicker(frameDuration)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-m.r.done:
			return
		case <-t.C:
			m.tick()
		}
	}
}

func (m *mixer) add(c *Call) {
	m.mu.Lock()
	m.calls = append(m.calls, c)
	m.mu.Unlock()
}

func (m *mixer) removeCall(c *Call) {
	m.mu.Lock()
	for i, x := range m.calls {
		if x == c {
			m.calls = append(m.calls[:i], m.calls[i+1:]...)
			break
		}
	}
	m.mu.Unlock()
}

// feed takes a packet of a WebRTC participant's published audio.
func (m *mixer) feed(f *forward, p *rtp.Packet) {
	m.mu.Lock()
	s := m.webs[f]
	if s == nil {
		dec, err := audio.NewDecoder(codecOpus)
		if err != nil { // built without Opus: the calls hear only each other
			m.mu.Unlock()
			return
		}
		s = newSource(48000, dec)
		m.webs[f] = s
	}
	m.mu.Unlock()
	s.push(p.SequenceNumber, p.Timestamp, p.Payload)
}

// drop forgets a WebRTC participant's audio that is no longer published.
func (m *mixer) drop(f *forward) {
	m.mu.Lock()
	delete(m.webs, f)
	m.mu.Unlock()
}

// tick mixes one 20 ms frame.
func (m *mixer) tick() {
	m.mu.Lock()
	m.callsNow = append(m.callsNow[:0], m.calls...)
	m.websNow, m.srcNow = m.websNow[:0], m.srcNow[:0]
	for f, s := range m.webs {
		m.websNow = append(m.websNow, f)
		m.srcNow = append(m.srcNow, s)
	}
	m.mu.Unlock()
	n := len(m.callsNow) + len(m.srcNow)
	for len(m.frames) < n {
		m.frames = append(m.frames, make([]int16, 0, audio.FrameSamples))
		m.outs = append(m.outs, make([]int16, audio.FrameSamples))
	}
	m.ins = m.ins[:0]
	for i, c := range m.callsNow {
		m.ins = append(m.ins, heard(c.src.frame(m.frames[i][:0]), c.muted.Load()))
	}
	for i, s := range m.srcNow {
		f := m.websNow[i]
		m.ins = append(m.ins, heard(s.frame(m.frames[len(m.callsNow)+i][:0]), f.owner != nil && f.owner.muted.Load()))
	}
	// Only calls listen through this mix; WebRTC participants hear the
	// others through the SFU.
	outs := append(m.listen[:0], m.outs[:len(m.callsNow)]...)
	for range m.srcNow {
		outs = append(outs, nil)
	}
	m.listen = outs
	m.m.MixMinusOne(outs, m.ins)
	for i, c := range m.callsNow {
		c.send(outs[i])
	}
	if m.out != nil {
		m.m.Mix(m.callMix, m.ins[:len(m.callsNow)])
		m.sendOut()
	}
}

// heard is what a speaker adds to the mix: nothing when there is no
// frame (nothing arrived yet) or when the focus mutes it.
func heard(frame []int16, muted bool) []int16 {
	if len(frame) == 0 || muted {
		return nil
	}
	return frame
}

// sendOut sends the calls' mix to the WebRTC participants, in Opus.
func (m *mixer) sendOut() {
	payload, err := m.enc.Encode(m.outBuf[:0], m.callMix)
	if err != nil {
		return
	}
	m.outPkt.Payload = payload
	if err := m.out.local.WriteRTP(&m.outPkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		m.r.b.log.Debug("media: sending the calls' mix failed", "err", err)
	}
	m.outPkt.SequenceNumber++
	m.outPkt.Timestamp += 960
}
