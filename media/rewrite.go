package media

// rewriter maps the sequence numbers, timestamps, VP8 picture IDs and
// TL0PICIDX of the layers a subscriber is sent, one after another, onto
// one continuous outgoing stream. Within a layer each is the last
// forwarded value plus the packet's distance from the last it was mapped
// from; the first packet of a new layer follows the last forwarded one
// (sequence number +1, picture ID +1, TL0PICIDX +1, timestamp + the time
// elapsed since, at the clock rate).
type rewriter struct {
	started   bool
	switching bool   // the next packet is a new layer's first
	inSeq     uint16 // the newest packet of the current layer seen
	outSeq    uint16 // and what it became
	ahead     int    // how far the newest is past the current layer's first (at most 1<<15)
	inTS      uint32
	outTS     uint32
	outAt     int64 // when the newest was forwarded, unix nanoseconds
	clockRate uint32

	// picture IDs and TL0PICIDX: anchored in the current layer (Set),
	// and ever forwarded (Ever)
	picSet, picEver bool
	pic15           bool // the current layer's picture IDs are 15 bits
	inPic           uint16
	outPic          uint16 // 15 bits
	tl0Set, tl0Ever bool
	inTL0           uint8
	outTL0          uint8

	// padding the bridge inserted into the current layer (pad): the
	// newest incoming sequence number when each was, so that a late
	// packet from before it keeps its place; padLost: entries dropped
	// (the oldest), and the newest of them
	padAfter []uint16
	padLost  bool
	padOld   uint16
}

// maxPads bounds the padding remembered for late packets: a probe
// sends at most a few dozen padding packets a second.
const maxPads = 128

// switchLayer makes the next packet the first of another layer.
func (w *rewriter) switchLayer() {
	if w.started {
		w.switching = true
	}
}

// maxTSStep bounds the timestamp step across a layer switch: a
// subscriber that received nothing for a long while gets at most 10 s.
const maxTSStep = 10

// next maps an RTP packet's sequence number and timestamp. ok is false
// for a packet older than the current layer's first: it is dropped.
func (w *rewriter) next(seq uint16, ts uint32, now int64) (outSeq uint16, outTS uint32, ok bool) {
	switch {
	case !w.started:
		w.started = true
		w.inSeq, w.outSeq, w.ahead = seq, seq, 0
		w.inTS, w.outTS = ts, ts
	case w.switching:
		w.switching = false
		w.picSet, w.tl0Set = false, false // re-anchored by picture and tl0
		step := uint64(1)
		if el := now - w.outAt; el > 0 {
			el = min(el, maxTSStep*1e9)
			step = max(1, uint64(el)/1000*uint64(w.clockRate)/1e6)
		}
		w.outSeq++
		w.ahead = 0
		w.inSeq = seq
		w.padAfter, w.padLost = w.padAfter[:0], false
		w.outTS += uint32(step)
		w.inTS = ts
	default:
		d := int16(seq - w.inSeq)
		out := w.outSeq + uint16(d)
		outTS := w.outTS + (ts - w.inTS)
		if d <= 0 {
			if -int(d) > w.ahead {
				return 0, 0, false // from before the layer's first
			}
			pads, ok := w.padsSince(seq)
			if !ok {
				return 0, 0, false // from before padding no longer remembered
			}
			return out - uint16(pads), outTS, true // a late or repeated packet: the newest stays
		}
		w.ahead = min(w.ahead+int(d), 1<<15)
		w.inSeq, w.outSeq, w.inTS, w.outTS = seq, out, ts, outTS
	}
	w.outAt = now
	return w.outSeq, w.outTS, true
}

// pad returns the sequence number and timestamp of a packet of padding
// the bridge adds to the stream now, after the newest forwarded (ok
// false before the first, or at a layer's switch): what follows is
// numbered after it.
func (w *rewriter) pad() (seq uint16, ts uint32, ok bool) {
	if !w.started || w.switching {
		return 0, 0, false
	}
	if len(w.padAfter) == maxPads {
		w.padLost, w.padOld = true, w.padAfter[0]
		w.padAfter = append(w.padAfter[:0], w.padAfter[1:]...)
	}
	w.padAfter = append(w.padAfter, w.inSeq)
	w.outSeq++
	return w.outSeq, w.outTS, true
}

// padsSince returns how many padding packets were added after the
// incoming packet seq was forwarded (or would have been): they come
// before it in the outgoing numbering that followed. ok is false if
// some of them are no longer remembered.
func (w *rewriter) padsSince(seq uint16) (n int, ok bool) {
	if w.padLost && int16(w.padOld-seq) >= 0 {
		return 0, false
	}
	for _, after := range w.padAfter {
		if int16(after-seq) >= 0 {
			n++
		}
	}
	return n, true
}

// skip notes a packet of the current layer that is not forwarded (only
// padding): if it is the next in order, the packet after it follows
// the last forwarded without a gap.
func (w *rewriter) skip(seq uint16) {
	if w.started && !w.switching && seq == w.inSeq+1 {
		w.inSeq = seq
	}
}

// picture maps a VP8 picture ID (7 or 15 bits, pic15) to 15 bits.
func (w *rewriter) picture(pic uint16, pic15 bool) uint16 {
	if !w.picSet || pic15 != w.pic15 { // a new layer's first: one after the last
		if w.picEver {
			w.outPic = (w.outPic + 1) & 0x7fff
		} else {
			w.outPic = pic & 0x7fff
		}
		w.picSet, w.picEver, w.pic15, w.inPic = true, true, pic15, pic
		return w.outPic
	}
	d := wrapDelta(pic, w.inPic, pic15)
	out := uint16(int(w.outPic)+d) & 0x7fff
	if d > 0 {
		w.inPic, w.outPic = pic, out
	}
	return out
}

// tl0 maps a VP8 TL0PICIDX.
func (w *rewriter) tl0(v uint8) uint8 {
	if !w.tl0Set {
		if w.tl0Ever {
			w.outTL0++
		} else {
			w.outTL0 = v
		}
		w.tl0Set, w.tl0Ever, w.inTL0 = true, true, v
		return w.outTL0
	}
	d := int8(v - w.inTL0)
	out := w.outTL0 + uint8(d)
	if d > 0 {
		w.inTL0, w.outTL0 = v, out
	}
	return out
}

// wrapDelta is a-b for picture IDs of 15 bits (or 7), in -half..half-1.
func wrapDelta(a, b uint16, bits15 bool) int {
	mod := 1 << 7
	if bits15 {
		mod = 1 << 15
	}
	d := (int(a) - int(b)) & (mod - 1)
	if d >= mod/2 {
		d -= mod
	}
	return d
}
