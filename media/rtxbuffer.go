package media

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// What the bridge sends a subscriber is kept for retransmission (RFC
// 4585 generic NACK, answered on the stream itself) as long as a
// request for it can usefully come, by the connection's round trip:
// 2 round trips and half a second (a receiver asks after a round trip
// and some reordering, the downlink resends each packet up to rtxTries
// times rtxRepeat apart), at least rtxKeepLeast and at most
// rtxKeepMost. pion's NACK responder, which the bridge used before,
// keeps the last 1,024 packets of every stream, each in a buffer of
// 1,460 bytes: about 1.6 MB per video a subscriber receives, once it
// has sent that many (10 s of a camera), whatever the round trip.
const (
	rtxKeepLeast = 500 * time.Millisecond
	rtxKeepMost  = 2 * time.Second
	// rtxKeepUnknown is the round trip assumed until a receiver report
	// gives one.
	rtxKeepUnknown = 200 * time.Millisecond
	// A stream's ring starts with rtxSlotsLeast slots and doubles, up
	// to rtxSlotsMost, when it would overwrite a packet still kept (a
	// keyframe's burst); it halves when the packet it overwrites was
	// sent over rtxShrinkAfter keeping times ago (half the ring then
	// still holds what is kept).
	rtxSlotsLeast  = 64
	rtxShrinkAfter = 2
	rtxSlotsMost   = 4096
)

// retransmitter is the bridge's NACK responder: the pion interceptor of
// each peer connection that keeps what is sent on its streams that
// negotiated NACK and sends again what the receiver asks for.
type retransmitter struct {
	interceptor.NoOp
	rtt atomic.Int64 // the connection's round trip, ns; 0: unknown

	mu      sync.Mutex
	streams map[uint32]*rtxStream
}

// rtxStream is one outgoing stream's packets kept: a ring indexed by
// sequence number, each slot the packet marshaled (header and payload),
// its buffer reused by the packets that follow in that slot.
type rtxStream struct {
	r *retransmitter
	w interceptor.RTPWriter // below: what sends (the downlink's numbering and pacing)

	mu    sync.Mutex
	slots []rtxSlot // a power of two
}

type rtxSlot struct {
	at  int64 // unix ns when sent; 0: empty
	seq uint16
	buf []byte
}

func newRetransmitter() *retransmitter {
	return &retransmitter{streams: map[uint32]*rtxStream{}}
}

// keep is how long packets are kept, by the round trip.
func (r *retransmitter) keep() time.Duration {
	rtt := time.Duration(r.rtt.Load())
	if rtt <= 0 {
		rtt = rtxKeepUnknown
	}
	return min(max(2*rtt+rtxKeepLeast, rtxKeepLeast), rtxKeepMost)
}

// BindLocalStream keeps the stream's packets if it negotiated NACK.
func (r *retransmitter) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	nack := false
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			nack = true
		}
	}
	if !nack {
		return w
	}
	s := &rtxStream{r: r, w: w, slots: make([]rtxSlot, rtxSlotsLeast)}
	r.mu.Lock()
	r.streams[info.SSRC] = s
	r.mu.Unlock()
	return s
}

// UnbindLocalStream forgets the stream's packets.
func (r *retransmitter) UnbindLocalStream(info *interceptor.StreamInfo) {
	r.mu.Lock()
	delete(r.streams, info.SSRC)
	r.mu.Unlock()
}

// Write keeps the packet, then sends it.
func (s *rtxStream) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	s.keepPacket(h, payload, time.Now().UnixNano())
	return s.w.Write(h, payload, a)
}

// keepPacket stores a packet sent at now, growing the ring if its slot
// holds a packet still kept, shrinking it if that packet is long gone.
func (s *rtxStream) keepPacket(h *rtp.Header, payload []byte, now int64) {
	size := h.MarshalSize() + len(payload)
	keep := int64(s.r.keep())
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := &s.slots[int(h.SequenceNumber)&(len(s.slots)-1)]
	if slot.at != 0 && slot.seq != h.SequenceNumber {
		switch age := now - slot.at; {
		case age < keep && len(s.slots) < rtxSlotsMost:
			s.resize(2*len(s.slots), now, keep)
			slot = &s.slots[int(h.SequenceNumber)&(len(s.slots)-1)]
		case age > rtxShrinkAfter*keep && len(s.slots) > rtxSlotsLeast:
			s.resize(len(s.slots)/2, now, keep)
			slot = &s.slots[int(h.SequenceNumber)&(len(s.slots)-1)]
		}
	}
	if cap(slot.buf) < size {
		slot.buf = make([]byte, size)
	}
	slot.buf = slot.buf[:size]
	n, err := h.MarshalTo(slot.buf)
	if err != nil {
		slot.at = 0
		return
	}
	copy(slot.buf[n:], payload)
	slot.at, slot.seq = now, h.SequenceNumber
}

// resize makes the ring n slots, moving each packet still kept at now
// to its slot in the new one (the newer where two meet). s.mu is held.
func (s *rtxStream) resize(n int, now, keep int64) {
	slots := make([]rtxSlot, n)
	for _, old := range s.slots {
		if old.at == 0 || now-old.at > keep {
			continue
		}
		if to := &slots[int(old.seq)&(n-1)]; to.at < old.at {
			*to = old
		}
	}
	s.slots = slots
}

// resend sends packet seq again if it is kept.
func (s *rtxStream) resend(seq uint16, now int64) {
	var h rtp.Header
	s.mu.Lock()
	slot := &s.slots[int(seq)&(len(s.slots)-1)]
	if slot.at == 0 || slot.seq != seq || now-slot.at > int64(s.r.keep()) {
		s.mu.Unlock()
		return
	}
	n, err := h.Unmarshal(slot.buf)
	if err != nil {
		s.mu.Unlock()
		return
	}
	// A copy: the slot may be reused while the write (through the
	// pacer, which copies what waits) is under way.
	pkt := make([]byte, len(slot.buf)-n)
	copy(pkt, slot.buf[n:])
	s.mu.Unlock()
	_, _ = s.w.Write(&h, pkt, interceptor.Attributes{})
}

// BindRTCPReader answers the receiver's NACKs and learns the round trip
// from its receiver reports.
func (r *retransmitter) BindRTCPReader(rd interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := rd.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = make(interceptor.Attributes)
		}
		pkts, perr := a.GetRTCPPackets(b[:n])
		if perr != nil {
			return n, a, nil // unreadable: the reader's caller finds out
		}
		now := time.Now()
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				r.nack(p, now.UnixNano())
			case *rtcp.ReceiverReport:
				for _, rr := range p.Reports {
					if rtt, ok := reportRoundTrip(rr, now); ok {
						r.rtt.Store(rtt)
					}
				}
			}
		}
		return n, a, nil
	})
}

// nack sends again what a NACK asks for, of what is kept.
func (r *retransmitter) nack(p *rtcp.TransportLayerNack, now int64) {
	r.mu.Lock()
	s := r.streams[p.MediaSSRC]
	r.mu.Unlock()
	if s == nil {
		return
	}
	for _, pair := range p.Nacks {
		pair.Range(func(seq uint16) bool {
			s.resend(seq, now)
			return true
		})
	}
}

// retransmitterFactory makes each peer connection's retransmitter.
type retransmitterFactory struct{}

// NewInterceptor implements interceptor.Factory.
func (retransmitterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return newRetransmitter(), nil
}
