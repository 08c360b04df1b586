package audio

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const tick = 20 * time.Millisecond

// arrival is a packet of a simulated G.711 stream arriving at a tick.
type arrival struct {
	seq  uint16
	tick int
}

// inOrder returns n packets from seq first, each arriving on its tick
// (from tick 0).
func inOrder(first uint16, n int) []arrival {
	a := make([]arrival, n)
	for i := range a {
		a[i] = arrival{first + uint16(i), i}
	}
	return a
}

// play runs a jitter buffer for ticks ticks: on each, the packets due
// then are pushed (with timestamp 160·seq, wrapping, arriving on the
// tick) and one is popped. It returns the sequence numbers popped, -1
// where Pop said there was none.
func play(jb *JitterBuffer, arrivals []arrival, ticks int) []int {
	var got []int
	for t := range ticks {
		for _, a := range arrivals {
			if a.tick == t {
				payload := []byte{byte(a.seq >> 8), byte(a.seq)}
				jb.Push(a.seq, uint32(a.seq)*160, epoch.Add(time.Duration(t)*tick), payload)
			}
		}
		p, ok := jb.Pop()
		switch {
		case !ok && p != nil:
			panic("Pop returned a payload with ok false")
		case ok:
			got = append(got, int(p[0])<<8|int(p[1]))
		default:
			got = append(got, -1)
		}
	}
	return got
}

// seqs returns the sequence numbers from first, n of them, as play
// reports them.
func seqs(first uint16, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = int(first + uint16(i))
	}
	return s
}

func none(n int) []int { return slices.Repeat([]int{-1}, n) }

func expect(t *testing.T, got []int, want ...[]int) {
	t.Helper()
	if w := slices.Concat(want...); !slices.Equal(got, w) {
		t.Fatalf("popped %v\n          want %v", got, w)
	}
}

func TestJitterInOrder(t *testing.T) {
	jb := NewJitterBuffer(8000, 160)
	if d := jb.Delay(); d != 40*time.Millisecond {
		t.Fatalf("initial Delay = %v, want 40ms", d)
	}
	got := play(jb, inOrder(1000, 20), 22)
	// One tick of silence while 40 ms are buffered, then the packets in
	// turn, then nothing once they are all played.
	expect(t, got, none(1), seqs(1000, 20), none(1))
	if s := jb.Stats(); s != (JitterStats{}) {
		t.Errorf("stats %+v, want none", s)
	}
	if d := jb.Delay(); d != 40*time.Millisecond {
		t.Errorf("Delay with no jitter = %v, want 40ms", d)
	}
}

func TestJitterReorders(t *testing.T) {
	// Pairs swapped: each even packet comes a tick after the odd one.
	var a []arrival
	for i := 0; i < 20; i += 2 {
		a = append(a, arrival{uint16(i + 1), i}, arrival{uint16(i), i + 1})
	}
	jb := NewJitterBuffer(8000, 160)
	got := play(jb, a, 21)
	expect(t, got, none(1), seqs(0, 20))
	if s := jb.Stats(); s != (JitterStats{}) {
		t.Errorf("stats %+v, want none", s)
	}

	// Within a tick, any order.
	jb = NewJitterBuffer(8000, 160)
	a = []arrival{{5, 0}, {3, 0}, {4, 0}, {6, 1}, {7, 2}}
	expect(t, play(jb, a, 6), seqs(3, 5), none(1))
}

func TestJitterDuplicates(t *testing.T) {
	a := inOrder(0, 10)
	a = append(a, a[:5]...)      // the first five twice, at once
	a = append(a, arrival{7, 9}) // 7 again after it was played
	a = append(a, arrival{9, 9}) // 9 again, waiting to be played
	a = append(a, arrival{2, 9}) // 2, long played
	jb := NewJitterBuffer(8000, 160)
	got := play(jb, a[:15], 11)
	expect(t, got, none(1), seqs(0, 10))
	if s := jb.Stats(); s.Duplicates != 5 || s.Late != 0 {
		t.Errorf("stats %+v, want 5 duplicates", s)
	}
	jb = NewJitterBuffer(8000, 160)
	got = play(jb, a[:18], 11)
	expect(t, got, none(1), seqs(0, 10))
	if s := jb.Stats(); s.Duplicates != 8 || s.Late != 0 || s.Lost != 0 {
		t.Errorf("stats %+v, want 8 duplicates", s)
	}
}

func TestJitterLoss(t *testing.T) {
	a := slices.DeleteFunc(inOrder(100, 20), func(a arrival) bool {
		return a.seq == 105 || a.seq == 110 || a.seq == 115
	})
	jb := NewJitterBuffer(8000, 160)
	got := play(jb, a, 21)
	expect(t, got, none(1), seqs(100, 5), none(1), seqs(106, 4), none(1), seqs(111, 4), none(1), seqs(116, 4))
	if s := jb.Stats(); s.Lost != 3 || s.Late != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 3 lost", s)
	}
}

func TestJitterLate(t *testing.T) {
	a := inOrder(0, 12)
	a[5].tick = 9 // comes 4 ticks late, after its turn
	jb := NewJitterBuffer(8000, 160)
	got := play(jb, a, 13)
	expect(t, got, none(1), seqs(0, 5), none(1), seqs(6, 6))
	if s := jb.Stats(); s.Lost != 1 || s.Late != 1 {
		t.Errorf("stats %+v, want 1 lost, 1 late", s)
	}
	// Late by less than the delay: in time.
	a = inOrder(0, 12)
	a[5].tick = 6
	jb = NewJitterBuffer(8000, 160)
	expect(t, play(jb, a, 13), none(1), seqs(0, 12))
}

func TestJitterWrapAround(t *testing.T) {
	jb := NewJitterBuffer(8000, 160)
	a := inOrder(65530, 15)
	a[8].tick, a[9].tick = a[9].tick, a[8].tick // reordered across 0
	got := play(jb, a, 16)
	expect(t, got, none(1), seqs(65530, 15))
	if s := jb.Stats(); s != (JitterStats{}) {
		t.Errorf("stats %+v, want none", s)
	}
}

func TestJitterRestart(t *testing.T) {
	jb := NewJitterBuffer(8000, 160)
	a := append(inOrder(100, 5), inOrder(40000, 5)...)
	for i := 5; i < 10; i++ {
		a[i].tick += 7
	}
	// 100-104, then a new stream from 40000: buffered afresh.
	got := play(jb, a, 13)
	expect(t, got, none(1), seqs(100, 5), none(2), seqs(40000, 5))
	if s := jb.Stats(); s.Resets != 1 || s.Lost != 0 || s.Late != 0 {
		t.Errorf("stats %+v, want 1 reset", s)
	}

	// Backwards by more than 100: a restart too, not late packets.
	jb = NewJitterBuffer(8000, 160)
	a = append(inOrder(500, 5), inOrder(200, 5)...)
	for i := 5; i < 10; i++ {
		a[i].tick += 7
	}
	expect(t, play(jb, a, 13), none(1), seqs(500, 5), none(2), seqs(200, 5))
	if s := jb.Stats(); s.Resets != 1 || s.Late != 0 {
		t.Errorf("stats %+v, want 1 reset", s)
	}
}

func TestJitterSilenceSuppression(t *testing.T) {
	// A sender stops sending in silence (DTX, VAD): sequence numbers go
	// on from where they were, timestamps jump by the silence, a second.
	// The silence is not a loss, nor jitter.
	jb := NewJitterBuffer(8000, 160)
	var got []int
	for tk := range 72 {
		if i := tk; i < 10 || i >= 60 {
			seq := uint16(i)
			if i >= 60 {
				seq -= 50
			}
			jb.Push(seq, uint32(i)*160, epoch.Add(time.Duration(tk)*tick), []byte{byte(seq)})
		}
		if p, ok := jb.Pop(); ok {
			got = append(got, int(p[0]))
		} else {
			got = append(got, -1)
		}
	}
	expect(t, got, none(1), seqs(0, 10), none(50), seqs(10, 11))
	if s := jb.Stats(); s != (JitterStats{}) {
		t.Errorf("stats %+v, want none", s)
	}
	if d := jb.Delay(); d != 40*time.Millisecond {
		t.Errorf("Delay = %v after silence", d)
	}
}

func TestJitterUnderrun(t *testing.T) {
	// Packets stop for 10 ticks, then go on: the buffer runs dry, says
	// nothing was there (not a loss), and buffers its delay again.
	a := inOrder(0, 20)
	for i := 10; i < 20; i++ {
		a[i].tick += 10
	}
	jb := NewJitterBuffer(8000, 160)
	got := play(jb, a, 31)
	expect(t, got, none(1), seqs(0, 10), none(11), seqs(10, 9))
	if s := jb.Stats(); s.Lost != 0 {
		t.Errorf("stats %+v, want no loss", s)
	}
}

func TestJitterAdapts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	jb := NewJitterBuffer(48000, 960) // Opus clock
	push := func(n int, maxJitter time.Duration, seq *uint16) {
		for range n {
			var j time.Duration
			if maxJitter > 0 {
				j = time.Duration(r.Int64N(int64(maxJitter)))
			}
			at := epoch.Add(time.Duration(*seq)*tick + j)
			jb.Push(*seq, uint32(*seq)*960, at, []byte{1})
			jb.Pop()
			*seq++
		}
	}
	var seq uint16
	push(200, 0, &seq)
	if d := jb.Delay(); d != 40*time.Millisecond {
		t.Fatalf("Delay without jitter = %v, want 40ms", d)
	}
	// Uniform delays over 60 ms: mean |D| is 20 ms, so 2·J+20 = 60 ms.
	push(500, 60*time.Millisecond, &seq)
	if d := jb.Delay(); d < 60*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("Delay with 60 ms of jitter = %v, want 60-100 ms", d)
	}
	push(500, 900*time.Millisecond, &seq)
	if d := jb.Delay(); d != 200*time.Millisecond {
		t.Errorf("Delay with 900 ms of jitter = %v, want the 200 ms cap", d)
	}
	push(1000, 0, &seq)
	if d := jb.Delay(); d != 40*time.Millisecond {
		t.Errorf("Delay once jitter is gone = %v, want 40ms", d)
	}
}

func TestJitterDelayAbsorbsJitter(t *testing.T) {
	// Each packet is delayed by 0-50 ms on its way, and pushed before
	// the Pop of the first tick after it arrived. Once the buffer has
	// adapted, nearly every tick has its frame.
	r := rand.New(rand.NewPCG(5, 6))
	type packet struct {
		seq uint16
		at  time.Duration
	}
	var a []packet
	for i := range 3000 {
		a = append(a, packet{uint16(i), time.Duration(i)*tick + time.Duration(r.Int64N(int64(50*time.Millisecond)))})
	}
	slices.SortFunc(a, func(x, y packet) int { return int(x.at - y.at) })
	jb := NewJitterBuffer(8000, 160)
	next, gaps := 0, 0
	for tk := range 3000 {
		now := time.Duration(tk) * tick
		for next < len(a) && a[next].at <= now {
			jb.Push(a[next].seq, uint32(a[next].seq)*160, epoch.Add(a[next].at), []byte{0})
			next++
		}
		if _, ok := jb.Pop(); !ok && tk >= 500 {
			gaps++
		}
	}
	t.Logf("delay %v, stats %+v, %d ticks of the last 2500 without a frame", jb.Delay(), jb.Stats(), gaps)
	if d := jb.Delay(); d < 60*time.Millisecond || d > 120*time.Millisecond {
		t.Errorf("Delay = %v with 50 ms of jitter, want 60-120 ms", d)
	}
	if gaps > 25 { // 1%
		t.Errorf("%d ticks of 2500 without a frame", gaps)
	}
}

func TestJitterCatchesUp(t *testing.T) {
	// A stall: packets 10-17 held up, then all arriving at once. The
	// buffer runs dry, then holds 8 frames, 6 more than its target: it
	// drops frames to catch up.
	jb := NewJitterBuffer(8000, 160)
	a := inOrder(0, 40)
	for i := 10; i < 18; i++ {
		a[i].tick = 17
	}
	got := play(jb, a, 40)
	expect(t, got[:18], none(1), seqs(0, 10), none(6), seqs(10, 1))
	s := jb.Stats()
	if s.Dropped == 0 || s.Lost != 0 {
		t.Errorf("stats %+v, want frames dropped, none lost", s)
	}
	target := int(jb.Delay() / tick)
	if d := jb.depth(); d > target+jitterSlack {
		t.Errorf("popped %v: %d frames buffered after catching up, for a target of %d", got, d, target)
	}
}

func TestJitterBurstLossWhenDry(t *testing.T) {
	// Two packets lost in a row empty a buffer of 2 frames: the first
	// missing frame is reported when the buffer is dry, the second when
	// 112 comes, and the delay is what it was.
	a := slices.DeleteFunc(inOrder(100, 20), func(a arrival) bool {
		return a.seq == 110 || a.seq == 111
	})
	jb := NewJitterBuffer(8000, 160)
	got := play(jb, a, 21)
	expect(t, got, none(1), seqs(100, 10), none(2), seqs(112, 8))
	if s := jb.Stats(); s.Lost != 2 {
		t.Errorf("stats %+v, want 2 lost", s)
	}
}

func TestJitterFloodCap(t *testing.T) {
	jb := NewJitterBuffer(8000, 160)
	payload := make([]byte, 160)
	for i := range 10000 {
		jb.Push(uint16(i), uint32(i)*160, epoch, payload)
		if jb.count > jitterWindow {
			t.Fatalf("%d packets stored after %d pushes", jb.count, i+1)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 10000 {
		jb.Push(uint16(r.Uint32()), r.Uint32(), epoch, payload)
		if jb.count > jitterWindow {
			t.Fatalf("%d packets stored", jb.count)
		}
	}
	n := 0
	for range 100 {
		if _, ok := jb.Pop(); ok {
			n++
		}
	}
	if n > jitterWindow {
		t.Errorf("popped %d packets from a buffer of %d", n, jitterWindow)
	}
}

func TestJitterPushCopies(t *testing.T) {
	jb := NewJitterBuffer(8000, 160)
	p := []byte("abc")
	jb.Push(1, 160, epoch, p)
	jb.Push(2, 320, epoch, p)
	p[0] = 'X'
	got, ok := jb.Pop()
	if !ok || string(got) != "abc" {
		t.Errorf("Pop = %q, %v; want the payload as pushed", got, ok)
	}
}

func TestNewJitterBufferPanics(t *testing.T) {
	for _, c := range []struct {
		rate  int
		frame uint32
	}{{0, 160}, {8000, 0}, {-1, 160}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewJitterBuffer(%d, %d) did not panic", c.rate, c.frame)
				}
			}()
			NewJitterBuffer(c.rate, c.frame)
		}()
	}
}
