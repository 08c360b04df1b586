package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// A subscriber whose receiver reports heavy loss is moved one layer
// down at that layer's next keyframe, and may go up again once the loss
// has not been reported for a while; light loss changes nothing.
func TestHeavyLossStepsASubscriberDown(t *testing.T) {
	now := time.Now().UnixNano()
	f := bareForward(now)
	d := newDownTrack(f, LayerHigh)
	w := &discardWriter{}
	d.ws, d.ssrc = w, 42
	f.addDown(d)
	seq := [numLayers]uint16{}
	send := func(l Layer, key bool, at int64) {
		for i := range numLayers { // every layer keeps sending
			f.layers[i].Load().lastSeen.Store(at)
		}
		seq[l]++
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[l], Timestamp: uint32(seq[l]) * 3000},
			Payload: vp8Payload(seq[l], 0, true, key, 0, 0, []byte{1})}
		f.route(f.layers[l].Load(), pkt, at)
	}
	send(LayerHigh, true, now)
	if d.layer() != LayerHigh {
		t.Fatalf("receives %v, want f", d.layer())
	}
	d.receiverReport(42, lossyFraction-1, now)
	d.receiverReport(7, 255, now) // another stream's
	send(LayerMid, true, now)
	if d.layer() != LayerHigh {
		t.Fatalf("after light loss: %v, want f", d.layer())
	}
	d.receiverReport(42, 64, now) // 25 %
	send(LayerHigh, false, now)
	send(LayerMid, false, now)
	if d.layer() != LayerHigh {
		t.Fatalf("switched before a keyframe: %v", d.layer())
	}
	send(LayerMid, true, now)
	if d.layer() != LayerMid {
		t.Fatalf("after heavy loss, at a keyframe of h: %v, want h", d.layer())
	}
	later := now + int64(lossHold) + int64(time.Second)
	send(LayerHigh, true, later)
	if d.layer() != LayerHigh {
		t.Fatalf("once the loss is past: %v, want f", d.layer())
	}
}
