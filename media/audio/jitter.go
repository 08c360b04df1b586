package audio

import (
	"math"
	"time"
)

// Sizing of a JitterBuffer.
const (
	// jitterSlots is the size of the ring of packets: a power of two (so
	// that it divides the 2^16 sequence numbers and a slot's index stays
	// the same across the wrap-around) larger than jitterWindow.
	jitterSlots = 64
	// jitterWindow is how far ahead of the next packet to play a packet
	// may be and still be kept: 50 packets, one second of 20 ms frames.
	// It caps the packets stored, whatever a sender floods the buffer
	// with. A packet further ahead restarts the buffer at that packet: a
	// sender that jumped that far started a new stream, or the network
	// lost more than the buffer could ever hide.
	jitterWindow = 50
	// jitterMisorder is how far behind the next packet a packet may be
	// and be counted late; further back is a jump back, which restarts
	// the buffer (as in RFC 3550 A.1, whose MAX_MISORDER this is).
	jitterMisorder = 100
	// The bounds of the target delay, in frames: 40 ms, since the
	// phase of arrivals against the 20 ms tick costs up to one frame
	// besides the network's jitter, and 200 ms, past which a
	// conversation suffers more from the delay than from the losses.
	minTargetFrames = 2
	maxTargetFrames = 10
	// jitterSlack is how many frames the buffer may hold beyond its
	// target before it discards one to catch up.
	jitterSlack = 2
)

// JitterStats are a JitterBuffer's counters since it was made.
type JitterStats struct {
	Lost       uint64 // frames whose packet had not come at their turn
	Late       uint64 // packets that came after their turn, discarded
	Duplicates uint64 // packets that came twice, discarded
	Dropped    uint64 // packets discarded unplayed to cut the delay or at a restart
	Resets     uint64 // restarts: jumps in sequence numbers
}

type jitterSlot struct {
	seq  uint16
	full bool
	buf  []byte
}

// JitterBuffer smooths out one source's RTP packets: it puts them back in
// sequence order, drops duplicates and latecomers, and hands out one
// packet per 20 ms tick, after a delay long enough to absorb the
// network's jitter. It assumes each packet holds one 20 ms frame, and
// orders by sequence number; timestamps serve only to measure jitter.
//
// The target delay follows the interarrival jitter J that RFC 3550
// §6.4.1 defines (the mean deviation of transit time differences,
// smoothed with a gain of 1/16): target = 2·J + 20 ms, rounded up to
// whole frames and held between 40 ms and 200 ms. Playout starts once
// the target is buffered, and starts again that way after the buffer ran
// dry (a stall of the network, or a sender that stopped sending in
// silence), so a growing target is reached by waiting; when the buffer
// holds more than 2 frames beyond its target (after a burst, or once the
// target fell) it discards a frame per tick to catch up.
//
// At most 50 packets (one second) are stored; a packet 50 or more
// sequence numbers ahead of the next to play, or more than 100 behind,
// restarts the buffer: a new stream, or a gap the buffer could not hide
// anyway. Payloads are copied into 64 buffers that are reused, so the
// memory held is at most 64 times the largest payload pushed.
//
// A JitterBuffer is not safe for concurrent use.
type JitterBuffer struct {
	clockRate float64
	frame     uint32
	frameDur  time.Duration

	slots [jitterSlots]jitterSlot
	count int // packets stored

	active  bool   // a packet came since the last restart: next and newest hold
	started bool   // playout began since the last restart: next only goes forward
	playing bool   // the delay is buffered; false while (re)buffering
	next    uint16 // sequence number of the packet to play next
	newest  uint16 // highest sequence number stored
	played  uint64 // bit i set: packet next-1-i was played
	dry     int    // ticks without playing since playout stopped

	jitter      float64 // RFC 3550 interarrival jitter, in timestamp units
	haveLast    bool
	lastTS      uint32
	lastArrival time.Time
	target      int // target delay, in frames

	stats JitterStats
}

// NewJitterBuffer returns a JitterBuffer for a stream with an RTP clock
// of clockRate Hz (8000 for G.711, 48000 for Opus) whose packets each
// hold frame timestamp units (20 ms: 160 for G.711, 960 for Opus). It
// panics if either is not positive.
func NewJitterBuffer(clockRate int, frame uint32) *JitterBuffer {
	if clockRate <= 0 || frame == 0 {
		panic("audio: NewJitterBuffer with a clock rate or frame size not positive")
	}
	return &JitterBuffer{
		clockRate: float64(clockRate),
		frame:     frame,
		frameDur:  time.Duration(frame) * time.Second / time.Duration(clockRate),
		target:    minTargetFrames,
	}
}

// Push stores a copy of the payload of the packet with sequence number
// seq and RTP timestamp ts, which arrived at arrival (best taken from
// time.Now, whose monotonic clock Push then uses). A duplicate, or a
// packet whose turn has passed, is discarded.
func (j *JitterBuffer) Push(seq uint16, ts uint32, arrival time.Time, payload []byte) {
	if !j.active {
		j.begin(seq)
	}
	switch d := int(int16(seq - j.next)); {
	case d < 0 && !j.started && int(uint16(j.newest-seq)) < jitterWindow:
		// Nothing has been played yet: the window reaches back to it.
		j.next = seq
	case d < 0 && d >= -jitterMisorder:
		if back := -d - 1; back < 64 && j.played>>back&1 != 0 {
			j.stats.Duplicates++
			return
		}
		j.stats.Late++
		j.measure(ts, arrival) // a latecomer tells of jitter all the same
		return
	case d < 0 || d >= jitterWindow:
		j.reset()
		j.begin(seq)
	}

	s := &j.slots[seq%jitterSlots]
	if s.full {
		// Every packet stored is within the window, hence in a slot of
		// its own: a full slot holds this very packet.
		j.stats.Duplicates++
		return
	}
	s.seq, s.full = seq, true
	s.buf = append(s.buf[:0], payload...)
	j.count++
	if int16(seq-j.newest) > 0 {
		j.newest = seq
	}
	j.measure(ts, arrival)
}

// Pop returns the payload whose turn it is, on each 20 ms tick; ok is
// false when there is none: while the delay is buffered (at the start or
// after the buffer ran dry; play silence) or for a packet missing in the
// sequence (conceal it; Stats().Lost grows by one, each missing frame is
// reported once, and Pop goes on with the next). The payload is the
// buffer's, good until the next call to Push or Pop.
func (j *JitterBuffer) Pop() (payload []byte, ok bool) {
	if j.count == 0 {
		if j.playing {
			j.playing, j.dry = false, 0 // ran dry: buffer the delay again
		}
		j.dry++
		return nil, false
	}
	if !j.playing {
		// Packets missing at the head when playout resumes may have been
		// lost rather than late: as many of them as the ticks the buffer
		// was dry are taken for lost, so that a loss at the point where the
		// buffer ran dry neither gets reported twice nor adds to the delay.
		for j.started && j.dry > 0 && !j.slots[j.next%jitterSlots].full {
			j.take()
			j.stats.Lost++
			j.dry--
		}
		if j.depth() < j.target {
			j.dry++
			return nil, false
		}
		j.playing, j.started, j.dry = true, true, 0
	} else if j.depth() > j.target+jitterSlack {
		if _, ok := j.take(); ok {
			j.stats.Dropped++
		} else {
			j.stats.Lost++
		}
	}
	payload, ok = j.take()
	if !ok {
		j.stats.Lost++
	}
	return payload, ok
}

// depth is the number of frames from the next to play to the newest
// stored, when any is stored.
func (j *JitterBuffer) depth() int { return int(uint16(j.newest-j.next)) + 1 }

// take moves past the next packet, returning it if it came.
func (j *JitterBuffer) take() ([]byte, bool) {
	s := &j.slots[j.next%jitterSlots]
	j.next++
	j.played <<= 1
	if !s.full {
		return nil, false
	}
	s.full = false
	j.count--
	j.played |= 1
	return s.buf, true
}

// Delay returns the current target delay.
func (j *JitterBuffer) Delay() time.Duration {
	return time.Duration(j.target) * j.frameDur
}

// Stats returns the buffer's counters.
func (j *JitterBuffer) Stats() JitterStats { return j.stats }

// begin starts the buffer afresh at packet seq.
func (j *JitterBuffer) begin(seq uint16) {
	j.active, j.started, j.playing = true, false, false
	j.next, j.newest, j.played, j.dry = seq, seq, 0, 0
}

// reset discards everything stored, on a jump in sequence numbers. The
// jitter measured so far is kept (the network is the same), but the next
// packet's timestamp is not compared with the last one's, which may
// belong to another stream.
func (j *JitterBuffer) reset() {
	for i := range j.slots {
		j.slots[i].full = false
	}
	j.stats.Dropped += uint64(j.count)
	j.stats.Resets++
	j.count = 0
	j.active = false
	j.haveLast = false
}

// measure updates the interarrival jitter with a packet's arrival (RFC
// 3550 §6.4.1 and A.8) and the target delay with the jitter. A
// difference in transit times of more than a second is taken for a
// discontinuity of the sender's timestamps, not for jitter.
func (j *JitterBuffer) measure(ts uint32, arrival time.Time) {
	if j.haveLast {
		d := arrival.Sub(j.lastArrival).Seconds()*j.clockRate - float64(int32(ts-j.lastTS))
		if d = math.Abs(d); d <= j.clockRate {
			j.jitter += (d - j.jitter) / 16
			frames := math.Ceil((2*j.jitter + float64(j.frame)) / float64(j.frame))
			j.target = int(min(max(frames, minTargetFrames), maxTargetFrames))
		}
	}
	j.haveLast, j.lastTS, j.lastArrival = true, ts, arrival
}
