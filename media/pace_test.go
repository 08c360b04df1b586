package media

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// sentLog is a connection's writer below the pacer: it notes when each
// packet left, and which.
type sentLog struct {
	mu   sync.Mutex
	seqs []uint16
	ssrc []uint32
	at   []time.Time
	size []int
}

func (l *sentLog) Write(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seqs = append(l.seqs, h.SequenceNumber)
	l.ssrc = append(l.ssrc, h.SSRC)
	l.at = append(l.at, time.Now())
	l.size = append(l.size, h.MarshalSize()+len(payload))
	return 0, nil
}

func (l *sentLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seqs)
}

// pacedStream is a stream's writer through a pacer.
type pacedStream struct {
	p     *pacer
	audio bool
	w     interceptor.RTPWriter
}

func (s *pacedStream) Write(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	return s.p.write(s.w, s.audio, h, payload, a)
}

// pacedPair returns a pacer at a fixed estimate and a video and an
// audio stream through it, onto log.
func pacedPair(t *testing.T, estimate int, log *sentLog) (*pacer, *pacedStream, *pacedStream) {
	p := newPacer(func() int { return estimate })
	t.Cleanup(p.close)
	return p, &pacedStream{p: p, w: log}, &pacedStream{p: p, audio: true, w: log}
}

func writeVideo(t *testing.T, s *pacedStream, seq uint16, size int) {
	t.Helper()
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 3000, SSRC: 1, Extensions: []rtp.Extension{}}
	if err := h.SetExtension(3, []byte{0, byte(seq)}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, size-h.MarshalSize())
	payload[0] = byte(seq)
	if _, err := s.Write(&h, payload, nil); err != nil {
		t.Fatal(err)
	}
}

// A keyframe's burst (12 packets, 14.4 KB) written at once to a
// subscriber estimated at 300 kbit/s leaves at 2.5 times that (93.75
// KB/s), after the 40 ms budget's worth (3.75 KB) that goes at once:
// spread over about 115 ms, in order.
func TestPacerSpreadsABurst(t *testing.T) {
	log := &sentLog{}
	p, video, _ := pacedPair(t, 300_000, log)
	start := time.Now()
	for i := range 12 {
		writeVideo(t, video, uint16(i), 1200)
	}
	if n := log.count(); n > 4 {
		t.Fatalf("%d packets of 12 left at once; the budget holds 3", n)
	}
	eventually(t, time.Second, "every packet leaves", func() bool { return log.count() == 12 })
	log.mu.Lock()
	defer log.mu.Unlock()
	for i, s := range log.seqs {
		if s != uint16(i) {
			t.Fatalf("sent in the order %v", log.seqs)
		}
	}
	span := log.at[11].Sub(start)
	if span < 90*time.Millisecond || span > 250*time.Millisecond {
		t.Fatalf("the burst left over %v, want about 115 ms", span)
	}
	// No 40 ms window after the first saw more than the budget and a
	// packet: the rate held.
	for i := range log.at {
		bytes := 0
		for j := i; j < len(log.at) && log.at[j].Sub(log.at[i]) < 40*time.Millisecond; j++ {
			bytes += log.size[j]
		}
		if i > 3 && bytes > 3750+2*1200 {
			t.Fatalf("%d bytes left within 40 ms from packet %d", bytes, i)
		}
	}
	if _, forced := p.counts(); forced != 0 {
		t.Errorf("%d packets sent before the budget held them", forced)
	}
}

// On a fast link (the initial 10 Mbit/s estimate: a 125 KB budget) a
// keyframe's burst leaves at once: nothing waits.
func TestPacerSendsAtOnceOnAFastLink(t *testing.T) {
	log := &sentLog{}
	p, video, _ := pacedPair(t, initialEstimate, log)
	for i := range 40 {
		writeVideo(t, video, uint16(i), 1200)
	}
	if n, waited := log.count(), p.waitedCount(); n != 40 || waited != 0 {
		t.Fatalf("%d of 40 packets left at once, %d waited", n, waited)
	}
}

// Audio never waits: written while video waits, it leaves at once,
// ahead of the video.
func TestPacerLetsAudioThrough(t *testing.T) {
	log := &sentLog{}
	p, video, audio := pacedPair(t, 300_000, log)
	for i := range 12 {
		writeVideo(t, video, uint16(i), 1200)
	}
	before := log.count()
	if p.waiting() == 0 {
		t.Fatal("no video waits")
	}
	h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 500, SSRC: 2}
	if _, err := audio.Write(&h, make([]byte, 100), nil); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	got := len(log.seqs) == before+1 && log.ssrc[before] == 2
	log.mu.Unlock()
	if !got || p.waiting() == 0 {
		t.Fatalf("the audio did not leave at once, ahead of the %d video packets waiting", p.waiting())
	}
	eventually(t, time.Second, "the video leaves after", func() bool { return log.count() == 13 })
}

// At the least estimate (75 kbit/s of pacing) a flood of 600 packets
// keeps at most 512 waiting: the oldest leave as the queue fills.
// Closed, the pacer drops what waits and its timer sends nothing more.
func TestPacerQueueIsBoundedAndStopsOnClose(t *testing.T) {
	log := &sentLog{}
	p, video, _ := pacedPair(t, minEstimate, log)
	for i := range 600 {
		writeVideo(t, video, uint16(i), 1200)
		if w := p.waiting(); w > paceQueue {
			t.Fatalf("%d packets wait", w)
		}
	}
	if w := p.waiting(); w != paceQueue {
		t.Fatalf("%d packets wait, want %d", w, paceQueue)
	}
	if n := log.count(); n < 600-paceQueue {
		t.Fatalf("%d packets left, want at least %d", n, 600-paceQueue)
	}
	p.close()
	if w := p.waiting(); w != 0 {
		t.Fatalf("%d packets wait after close", w)
	}
	n := log.count()
	time.Sleep(2 * paceMaxDelay)
	if log.count() != n {
		t.Fatalf("%d packets left after close", log.count()-n)
	}
}

// Nothing waits much more than paceMaxDelay: 40 KB written at once to a
// subscriber at the least estimate (which would take 4 s at its pacing
// rate) has all left 250 ms later, give or take the timer.
func TestPacerDelayIsBounded(t *testing.T) {
	log := &sentLog{}
	p, video, _ := pacedPair(t, minEstimate, log)
	start := time.Now()
	for i := range 33 {
		writeVideo(t, video, uint16(i), 1200)
	}
	eventually(t, time.Second, "every packet leaves", func() bool { return log.count() == 33 })
	log.mu.Lock()
	last := log.at[32].Sub(start)
	log.mu.Unlock()
	if last < paceMaxDelay-20*time.Millisecond || last > paceMaxDelay+100*time.Millisecond {
		t.Fatalf("the last packet left after %v, want about %v", last, paceMaxDelay)
	}
	if _, forced := p.counts(); forced == 0 {
		t.Fatal("no packet was sent late")
	}
}

// counts returns how many packets waited, and how many of them were
// sent before the budget held them.
func (p *pacer) counts() (waited, forced int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waited, p.forced
}

func (p *pacer) waitedCount() int { w, _ := p.counts(); return w }
