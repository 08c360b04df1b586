package media

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// rtxEnv is a retransmitter's stream with what it writes recorded.
type rtxEnv struct {
	r       *retransmitter
	s       *rtxStream
	written []rtp.Packet
}

func newRTXEnv(t *testing.T) *rtxEnv {
	t.Helper()
	e := &rtxEnv{r: newRetransmitter()}
	info := &interceptor.StreamInfo{SSRC: 7, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}
	w := e.r.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
		e.written = append(e.written, rtp.Packet{Header: h.Clone(), Payload: append([]byte(nil), payload...)})
		return len(payload), nil
	}))
	s, ok := w.(*rtxStream)
	if !ok {
		t.Fatal("a stream that negotiated NACK is not kept")
	}
	e.s = s
	return e
}

// send writes packet seq (its payload names it, 1,000 bytes) at now.
func (e *rtxEnv) send(seq uint16, now int64) {
	payload := bytes.Repeat([]byte{byte(seq)}, 1000)
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 7, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: seq%4 == 0}
	_ = h.SetExtension(3, []byte{byte(seq >> 8), byte(seq)})
	e.s.keepPacket(h, payload, now)
	e.written = append(e.written, rtp.Packet{Header: h.Clone(), Payload: payload})
}

// nack asks for seqs at now and returns what was sent again.
func (e *rtxEnv) nack(now int64, seqs ...uint16) []rtp.Packet {
	n := len(e.written)
	p := &rtcp.TransportLayerNack{MediaSSRC: 7, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
	e.r.nack(p, now)
	return e.written[n:]
}

// Packets asked for are sent again as they were sent (header with its
// extensions, payload), once a request; those not kept, or kept longer
// than the round trip calls for, are not.
func TestRetransmitterResendsWhatIsAskedFor(t *testing.T) {
	e := newRTXEnv(t)
	ms := func(n int) int64 { return start + int64(n)*int64(time.Millisecond) }
	for seq := range uint16(50) {
		e.send(seq, ms(int(seq)*10))
	}
	got := e.nack(ms(500), 3, 17, 18, 49)
	if len(got) != 4 {
		t.Fatalf("%d packets sent again for 4 asked for", len(got))
	}
	for i, want := range []uint16{3, 17, 18, 49} {
		p, orig := got[i], e.written[want]
		if p.SequenceNumber != want || p.Timestamp != orig.Timestamp || p.Marker != orig.Marker ||
			!bytes.Equal(p.GetExtension(3), orig.GetExtension(3)) || !bytes.Equal(p.Payload, orig.Payload) {
			t.Fatalf("packet %d sent again as %+v, sent first as %+v", want, p.Header, orig.Header)
		}
	}
	if got := e.nack(ms(500), 60, 1000); len(got) != 0 {
		t.Fatalf("packets never sent were sent: %d", len(got))
	}
	// The round trip unknown: kept 2 × 200 ms + 500 ms = 900 ms.
	if got := e.nack(ms(3*10+900+1), 3); len(got) != 0 {
		t.Fatal("a packet kept past its time was sent again")
	}
	e.r.rtt.Store(int64(600 * time.Millisecond)) // kept 1.7 s
	if got := e.nack(ms(3*10+1500), 3); len(got) != 1 {
		t.Fatal("with a long round trip, a packet was not kept long enough")
	}
	e.r.UnbindLocalStream(&interceptor.StreamInfo{SSRC: 7})
	if got := e.nack(ms(600), 49); len(got) != 0 {
		t.Fatal("a stream unbound still answers")
	}
}

// A stream's memory follows its rate and the round trip: 10 s of a
// camera at 200 packets a second on a 50 ms round trip keeps 128 slots
// (pion's responder kept 1,024), and a burst that outruns the ring
// grows it so that what is still wanted stays, until the rate is down
// again.
func TestRetransmitterKeepsByRoundTrip(t *testing.T) {
	e := newRTXEnv(t)
	e.r.rtt.Store(int64(50 * time.Millisecond)) // kept 600 ms
	var seq uint16
	now := start
	for range 2000 {
		e.send(seq, now)
		seq++
		now += int64(5 * time.Millisecond)
	}
	if n := len(e.s.slots); n != 128 {
		t.Fatalf("%d slots after 10 s at 200 packets a second, kept 600 ms; want 128", n)
	}
	// A keyframe: 400 packets in 40 ms.
	first := seq
	for range 400 {
		e.send(seq, now)
		seq++
		now += int64(100 * time.Microsecond)
	}
	if got := e.nack(now, first, first+1); len(got) != 2 {
		t.Fatalf("the burst's first packets, asked for at once, sent again: %d of 2", len(got))
	}
	if n := len(e.s.slots); n != 512 {
		t.Fatalf("%d slots after a burst of 400 packets, want 512", n)
	}
	// Back to the camera's rate: the ring shrinks again.
	for range 2000 {
		e.send(seq, now)
		seq++
		now += int64(5 * time.Millisecond)
	}
	if n := len(e.s.slots); n != 128 {
		t.Fatalf("%d slots 10 s after the burst, want 128 again", n)
	}
	if got := e.nack(now, seq-1, seq-100); len(got) != 2 {
		t.Fatalf("packets still kept after the shrink sent again: %d of 2", len(got))
	}
}

// A stream that did not negotiate NACK (audio) is not kept.
func TestRetransmitterSkipsStreamsWithoutNack(t *testing.T) {
	r := newRetransmitter()
	w := interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil })
	if _, kept := r.BindLocalStream(&interceptor.StreamInfo{SSRC: 1}, w).(*rtxStream); kept {
		t.Fatal("a stream without NACK is kept")
	}
}

// Writing a packet through the retransmitter allocates nothing once its
// slot has a buffer (here, packets written back to back fill the
// largest ring first).
func TestRetransmitterKeepsWithoutAllocating(t *testing.T) {
	e := newRTXEnv(t)
	w := interceptor.RTPWriter(e.s)
	e.s.w = interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil })
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 7}
	payload := make([]byte, 1000)
	for i := range 2 * rtxSlotsMost {
		h.SequenceNumber = uint16(i)
		_, _ = w.Write(h, payload, nil)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		h.SequenceNumber++
		_, _ = w.Write(h, payload, nil)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations a packet", allocs)
	}
}
