package media

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// forwardAll maps packets (seq, ts) of one layer and returns the output.
func forwardAll(t *testing.T, w *rewriter, now int64, seqs []uint16, tss []uint32) ([]uint16, []uint32) {
	t.Helper()
	var outS []uint16
	var outT []uint32
	for i, s := range seqs {
		os, ot, ok := w.next(s, tss[i], now+int64(i)*20*ms)
		if !ok {
			t.Fatalf("packet %d dropped", s)
		}
		outS, outT = append(outS, os), append(outT, ot)
	}
	return outS, outT
}

func TestRewriterSequenceWrapsAround(t *testing.T) {
	w := rewriter{clockRate: 90000}
	seqs := []uint16{65533, 65534, 65535, 0, 1, 2}
	tss := []uint32{4294965000, 4294965000, 4294966296, 1000, 1000, 4000} // the timestamp wraps too
	out, outT := forwardAll(t, &w, 0, seqs, tss)
	for i := 1; i < len(out); i++ {
		if out[i] != out[i-1]+1 {
			t.Fatalf("sequence numbers %v: not consecutive at %d", out, i)
		}
		if d := int32(outT[i] - outT[i-1]); d != int32(tss[i]-tss[i-1]) {
			t.Fatalf("timestamps %v: step %d at %d, want %d", outT, d, i, int32(tss[i]-tss[i-1]))
		}
	}
}

// A switch to another layer continues the numbering: the next sequence
// number, a timestamp later by the time elapsed, and neither old
// packets of the layer left nor packets of the new one from before the
// switch get through.
func TestRewriterSwitchKeepsOneStream(t *testing.T) {
	w := rewriter{clockRate: 90000}
	out, outT := forwardAll(t, &w, 0, []uint16{65530, 65531, 65532, 65533, 65534}, []uint32{3000, 3000, 6000, 6000, 9000})
	lastS, lastT := out[len(out)-1], outT[len(outT)-1]

	w.switchLayer()
	// 40 ms after the last, a packet of the new layer, numbered its own way
	s, ts, ok := w.next(1200, 77777777, 4*20*ms+40*ms)
	if !ok || s != lastS+1 || s != 65535 {
		t.Fatalf("first packet after the switch: seq %d (ok %v), want %d", s, ok, lastS+1)
	}
	if want := lastT + 3600; ts != want { // 40 ms at 90 kHz
		t.Fatalf("timestamp after the switch %d, want %d", ts, want)
	}
	s2, ts2, _ := w.next(1201, 77777777+3000, 5*20*ms+40*ms)
	if s2 != 0 || ts2 != ts+3000 {
		t.Fatalf("second packet: seq %d ts %d, want 0 and %d", s2, ts2, ts+3000)
	}
	if _, _, ok := w.next(1199, 77777777-3000, 6*20*ms); ok {
		t.Fatal("a packet of the new layer from before the switch was forwarded")
	}
	// A late packet of the new layer, after the switch, fills its gap.
	s4, _, _ := w.next(1203, 77777777+6000, 7*20*ms)
	s3, _, ok := w.next(1202, 77777777+3000, 8*20*ms)
	if !ok || s3 != 1 || s4 != 2 {
		t.Fatalf("late packet: seq %d ok %v, next %d; want 1 and 2", s3, ok, s4)
	}
}

// A switch a long silence after the last packet steps the timestamp by
// at most 10 s; one at the same instant by 1.
func TestRewriterSwitchTimestampStep(t *testing.T) {
	w := rewriter{clockRate: 90000}
	_, t0, _ := w.next(1, 100, 0)
	w.switchLayer()
	_, t1, _ := w.next(500, 9, 3600*1e9)
	if t1-t0 != 10*90000 {
		t.Fatalf("step %d after an hour, want %d", t1-t0, 10*90000)
	}
	w.switchLayer()
	_, t2, _ := w.next(9000, 5, 3600*1e9)
	if t2-t1 != 1 {
		t.Fatalf("step %d at the same instant, want 1", t2-t1)
	}
}

// Padding that is not forwarded leaves no gap.
func TestRewriterSkipLeavesNoGap(t *testing.T) {
	w := rewriter{clockRate: 90000}
	a, _, _ := w.next(10, 0, 0)
	w.skip(11)
	w.skip(12)
	b, _, _ := w.next(13, 3000, 20*ms)
	if b != a+1 {
		t.Fatalf("after skipped padding: %d, want %d", b, a+1)
	}
}

func TestRewriterPictureIDWrapsAt15Bits(t *testing.T) {
	w := rewriter{clockRate: 90000}
	var out []uint16
	for i, pic := range []uint16{32766, 32766, 32767, 0, 1} {
		w.next(uint16(i), 0, 0)
		out = append(out, w.picture(pic, true))
	}
	want := []uint16{32766, 32766, 32767, 0, 1}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("picture IDs %v, want %v", out, want)
		}
	}
	// Another layer's picture IDs continue from the last.
	w.switchLayer()
	w.next(900, 0, 0)
	if p := w.picture(12345, true); p != 2 {
		t.Fatalf("first picture ID of the new layer %d, want 2", p)
	}
	w.next(901, 0, 0)
	if p := w.picture(12346, true); p != 3 {
		t.Fatalf("second %d, want 3", p)
	}
}

// 7-bit picture IDs wrap at 128; written as 15 bits they keep counting.
func TestRewriterSevenBitPictureIDsKeepCounting(t *testing.T) {
	w := rewriter{clockRate: 90000}
	var out []uint16
	for i, pic := range []uint16{126, 127, 0, 1} {
		w.next(uint16(i), 0, 0)
		out = append(out, w.picture(pic, false))
	}
	for i := 1; i < len(out); i++ {
		if out[i] != out[i-1]+1 {
			t.Fatalf("picture IDs %v", out)
		}
	}
}

func TestRewriterTL0PicIdxWraps(t *testing.T) {
	w := rewriter{clockRate: 90000}
	var out []uint8
	for i, v := range []uint8{254, 255, 0, 0, 1} {
		w.next(uint16(i), 0, 0)
		out = append(out, w.tl0(v))
	}
	if want := []uint8{254, 255, 0, 0, 1}; string(out) != string(want) {
		t.Fatalf("TL0PICIDX %v, want %v", out, want)
	}
	w.switchLayer()
	w.next(77, 0, 0)
	if v := w.tl0(90); v != 2 {
		t.Fatalf("after a switch %d, want 2", v)
	}
}

// Past half the sequence-number space after a switch, packets still go
// through (the check against packets from before the switch must not
// wrap).
func TestRewriterLongAfterASwitch(t *testing.T) {
	w := rewriter{clockRate: 90000}
	w.next(7, 0, 0)
	w.switchLayer()
	for i := range 70000 {
		if _, _, ok := w.next(uint16(100+i), uint32(i)*3000, int64(i)*ms); !ok {
			t.Fatalf("packet %d after the switch dropped", i)
		}
	}
	if _, _, ok := w.next(uint16((100+69990)&0xffff), 0, 0); !ok {
		t.Fatal("a late packet long after the switch dropped")
	}
}
