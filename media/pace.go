package media

import (
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// Pacing: what the bridge sends a subscriber leaves at no more than
// paceFactor times the connection's downlink estimate. Video arrives in
// bursts (a keyframe is many packets at once, often larger than a weak
// link's buffer); sent as it comes, a burst fills the link's queue and
// its tail is dropped, so the keyframe never arrives whole and the
// subscriber, which cannot decode without it, asks for another.
//
// A packet goes out at once while the budget (paceBurst's worth at the
// pacing rate, refilled at that rate) holds it; otherwise it waits, in
// order, for a timer. Audio never waits: it goes out at once and takes
// its share of the budget, so the video behind it waits the longer.
// Nothing waits much more than paceMaxDelay: a packet that has waited
// that long is sent anyway. Dropping it instead would lose it for
// certain (and the subscriber's NACK would bring it back through the
// same queue), while the pacer is not where the rate is decided: the
// allocation keeps what is sent within the estimate on average, and a
// queue that old means the estimate is behind the path (it just fell,
// or it has not yet risen to the path's rate), when sending is the
// better guess. The queue holds at most
// paceQueue packets; when it is full the oldest goes out at once.
const (
	paceFactor   = 2.5
	paceBurst    = 40 * time.Millisecond
	paceMaxDelay = 250 * time.Millisecond
	paceQueue    = 512
	// paceBufSize is the largest packet (header and payload) that can
	// wait; a larger one (the bridge reads at most 1,500 bytes of a
	// publisher's) goes out at once, after what waits.
	paceBufSize = 2048
)

// pacedBuf holds a waiting packet; they are pooled, so that a packet
// that waits allocates nothing in the steady state.
type pacedBuf [paceBufSize]byte

var pacedBufs = sync.Pool{New: func() any { return new(pacedBuf) }}

// pacedPacket is a packet waiting: marshaled into buf, with the writer
// that sends it on and when it began to wait (unix nanoseconds).
type pacedPacket struct {
	w   interceptor.RTPWriter
	buf *pacedBuf
	n   int
	at  int64
}

// pacer paces one connection's outgoing packets: every stream of the
// connection writes through it. Its timer runs only while packets wait;
// close stops it.
type pacer struct {
	rate func() int // the estimate, bits/s

	mu     sync.Mutex
	tokens float64 // the budget, bytes, as of at
	at     int64
	queue  []pacedPacket // those from head wait, oldest first
	head   int
	n      int // len(queue) - head
	timer  *time.Timer
	armed  bool // the timer is set to flush
	closed bool
	flushs sync.WaitGroup // the timer's flushes set and not yet over
	// what a waiting packet is unmarshaled into to be sent on: its
	// extensions (interceptors below add theirs) and CSRCs
	hdr  rtp.Header
	exts [8]rtp.Extension
	csrc [15]uint32
	// counts, for tests: packets that waited, and those of them sent
	// before the budget held them (late or the queue full)
	waited, forced int
}

func newPacer(rate func() int) *pacer { return &pacer{rate: rate} }

// bytesPerSecond is the pacing rate.
func (p *pacer) bytesPerSecond() float64 { return paceFactor * float64(p.rate()) / 8 }

// refill adds to the budget what the rate gave it since the last
// refill, up to paceBurst's worth; it returns the budget's cap.
func (p *pacer) refill(now int64) (capacity float64) {
	rate := p.bytesPerSecond()
	capacity = rate * paceBurst.Seconds()
	if p.at == 0 {
		p.tokens = capacity
	} else if now > p.at {
		p.tokens += rate * time.Duration(now-p.at).Seconds()
	}
	p.tokens = min(p.tokens, capacity)
	p.at = now
	return capacity
}

// fits reports whether the budget holds a packet of size bytes: it has
// the packet's size, or is full (a packet larger than the whole budget,
// at a very low rate).
func (p *pacer) fits(size int, capacity float64) bool {
	return p.tokens >= float64(size) || p.tokens >= capacity
}

// write sends a packet of a stream through the pacer: at once if it is
// audio or the budget holds it and nothing waits; otherwise it waits.
func (p *pacer) write(w interceptor.RTPWriter, audio bool, h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
	size := h.MarshalSize() + len(payload)
	now := time.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return w.Write(h, payload, a)
	}
	capacity := p.refill(now)
	switch {
	case audio || (p.n == 0 && p.fits(size, capacity)):
		p.tokens -= float64(size)
		return w.Write(h, payload, a)
	case size > paceBufSize:
		for p.n > 0 {
			p.sendHead(true)
		}
		p.tokens -= float64(size)
		return w.Write(h, payload, a)
	}
	if p.n == paceQueue {
		p.sendHead(true) // full: the oldest goes now
	}
	if len(p.queue) == cap(p.queue) && p.head > 0 { // room at the front
		k := copy(p.queue, p.queue[p.head:])
		clear(p.queue[k:])
		p.queue, p.head = p.queue[:k], 0
	}
	buf := pacedBufs.Get().(*pacedBuf)
	n, err := h.MarshalTo(buf[:])
	if err != nil {
		pacedBufs.Put(buf)
		return 0, err
	}
	n += copy(buf[n:], payload)
	p.queue = append(p.queue, pacedPacket{w: w, buf: buf, n: n, at: now})
	p.n++
	p.waited++
	p.arm(now, capacity)
	return size, nil
}

// sendHead sends the oldest waiting packet; forced if the budget does
// not hold it. p.mu is held.
func (p *pacer) sendHead(forced bool) {
	e := &p.queue[p.head]
	p.hdr.Extensions, p.hdr.CSRC = p.exts[:0], p.csrc[:0]
	if hn, err := p.hdr.Unmarshal(e.buf[:e.n]); err == nil { // it was marshaled by write: it unmarshals
		p.tokens -= float64(e.n)
		_, _ = e.w.Write(&p.hdr, e.buf[hn:e.n], nil)
	}
	if forced {
		p.forced++
	}
	pacedBufs.Put(e.buf)
	p.pop()
}

// pop takes the oldest waiting packet off the queue. p.mu is held.
func (p *pacer) pop() {
	p.queue[p.head] = pacedPacket{}
	p.head++
	p.n--
	if p.n == 0 {
		p.queue, p.head = p.queue[:0], 0
	}
}

// arm sets the timer for when the oldest waiting packet may go: when
// the budget holds it, or it has waited paceMaxDelay. p.mu is held.
func (p *pacer) arm(now int64, capacity float64) {
	if p.armed || p.n == 0 {
		return
	}
	e := &p.queue[p.head]
	need := min(float64(e.n), capacity) - p.tokens
	wait := time.Duration(e.at + int64(paceMaxDelay) - now)
	if rate := p.bytesPerSecond(); rate > 0 && need > 0 {
		wait = min(wait, time.Duration(need/rate*float64(time.Second)))
	}
	wait = max(wait, time.Millisecond)
	p.armed = true
	p.flushs.Add(1)
	if p.timer == nil {
		p.timer = time.AfterFunc(wait, p.flush)
	} else {
		p.timer.Reset(wait)
	}
}

// flush sends what the budget now holds, and what has waited
// paceMaxDelay; the timer calls it.
func (p *pacer) flush() {
	defer p.flushs.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.closed {
		return
	}
	now := time.Now().UnixNano()
	capacity := p.refill(now)
	for p.n > 0 {
		e := &p.queue[p.head]
		late := now-e.at >= int64(paceMaxDelay)-int64(time.Millisecond)
		fits := p.fits(e.n, capacity)
		if !fits && !late {
			break
		}
		p.sendHead(!fits)
	}
	p.arm(now, capacity)
}

// waiting returns how many packets wait.
func (p *pacer) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// close drops what waits and stops the timer; it returns once no flush
// runs. Writes after it go out at once.
func (p *pacer) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.armed && p.timer.Stop() {
			p.armed = false
			p.flushs.Done()
		}
		for p.n > 0 {
			pacedBufs.Put(p.queue[p.head].buf)
			p.pop()
		}
	}
	p.mu.Unlock()
	p.flushs.Wait()
}

// isAudio reports whether a stream's MIME type is audio's.
func isAudio(info *interceptor.StreamInfo) bool {
	return len(info.MimeType) > 6 && strings.EqualFold(info.MimeType[:6], "audio/")
}
