package media

import (
	"math/rand/v2"
	"testing"
	"time"
)

// lossyLink is a simulated path to a client: a bottleneck of rate
// bits/s whose queue drops what would wait longer than limit (tbf's
// latency), 20 ms of propagation, and a share loss of the packets lost
// at random past the bottleneck (a radio link). The client's clock is
// 7 s ahead of the bridge's.
type lossyLink struct {
	rate  int
	limit time.Duration
	loss  float64
	rnd   *rand.Rand
	free  int64 // when the bottleneck is free again
}

func (l *lossyLink) arrival(sent int64, size int) int64 {
	if l.free-sent > int64(l.limit) {
		return 0 // the queue is full
	}
	l.free = max(l.free, sent) + int64(size*8)*int64(time.Second)/int64(l.rate)
	if l.rnd.Float64() < l.loss {
		return 0
	}
	return l.free + int64(20*time.Millisecond) + int64(7*time.Second)
}

// meetingOn drives the estimator as a weak subscriber's meeting would
// for dur, the client reporting every 100 ms over l: two others' audio
// (50 packets a second each, 110 bytes: 88 kbit/s) always, and a camera's layer as
// the estimate allows: the high one (500 kbit/s) while it has room for
// it and the audio (and 2 kbit/s to spare), else the low one (150 kbit/s), else none. Each
// layer starts with a keyframe of 20 frames' worth, and video is paced
// at 2.5 times the estimate, as the bridge does. It returns the share
// of the last half of dur during which the low layer was sent.
func meetingOn(d *downlink, l *lossyLink, dur time.Duration) float64 {
	const tick = 10 * time.Millisecond
	layers := [...]struct{ rate, needs int }{{150_000, 220_000}, {500_000, 590_000}}
	var c simClient
	send := func(now int64, size int) { c.sent(d.sent1(size, now, false), l.arrival(now, size)) }
	var paced []int // video packets waiting in the pacer, bytes
	var frameBytes, budget float64
	layer := -1
	low, counted := 0, 0
	now, nextFeedback := start, start+int64(100*time.Millisecond)
	for end := start + int64(dur); now < end; now += int64(tick) {
		if (now-start)/int64(tick)%2 == 0 { // one packet from each of two others every 20 ms
			send(now, 110)
			send(now, 110)
		}
		est := d.GetTargetBitrate()
		want := -1
		for i, ly := range layers {
			if est >= ly.needs {
				want = i
			}
		}
		if want != layer {
			layer, paced, frameBytes = want, paced[:0], 0
			if layer >= 0 { // a keyframe starts the layer
				for k := layers[layer].rate / 8 / 30 * 20; k > 0; k -= 1000 {
					paced = append(paced, min(k, 1000))
				}
			}
		}
		if layer >= 0 {
			for frameBytes += float64(layers[layer].rate) / 8 * tick.Seconds(); frameBytes >= 1000; frameBytes -= 1000 {
				paced = append(paced, 1000)
			}
		}
		budget = min(budget+2.5*float64(est)/8*tick.Seconds(), 2.5*float64(est)/8*0.04)
		for len(paced) > 0 && budget >= float64(paced[0]) {
			budget -= float64(paced[0])
			send(now, paced[0])
			paced = paced[1:]
		}
		if now-start >= int64(dur)/2 {
			counted++
			if layer == 0 {
				low++
			}
		}
		if now >= nextFeedback {
			nextFeedback += int64(100 * time.Millisecond)
			c.report(d, now)
		}
	}
	return float64(low) / float64(counted)
}

// A weak subscriber's link (300 kbit/s, a 150 ms queue) loses 3 % or
// 5 % of what crosses it at random, as radio links do: that loss comes
// without a queue, and the estimate still finds room for the camera's
// low layer beside the audio (about 220 kbit/s) and keeps it, most of
// the time, whatever the random draw. Loss the estimator's own rate
// causes is still heeded: behind 200 kbit/s, where the layer does not
// fit, it is sent a small share of the time only. Before the estimator
// judged loss over a second and rose under loss without a queue, 31 of
// 1,000 draws at 3 % and 991 at 5 % failed the first (seeds 4 and 13
// here at 3 %).
func TestDownlinkEstimateToleratesRandomLoss(t *testing.T) {
	for _, c := range []struct {
		rate        int
		loss        float64
		least, most float64
	}{
		{300_000, 0.03, 0.9, 1},
		{300_000, 0.05, 0.9, 1},
		{200_000, 0.03, 0, 0.3},
	} {
		for seed := range uint64(50) {
			d := newDownlink()
			l := &lossyLink{rate: c.rate, limit: 150 * time.Millisecond, loss: c.loss, rnd: rand.New(rand.NewPCG(seed, 28))}
			if on := meetingOn(d, l, 60*time.Second); on < c.least || on > c.most {
				t.Errorf("seed %d: %d bit/s with %.0f %% random loss: the low layer was sent %.0f %% of the last 30 s, want %.0f to %.0f %%",
					seed, c.rate, c.loss*100, on*100, c.least*100, c.most*100)
			}
		}
	}
}
