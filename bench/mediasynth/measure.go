package mediasynth

import (
	"context"
	"fmt"
	"time"
)

// Window is what Measure needs besides the publisher.
type Window struct {
	Server   string        // the server's name in the result
	Ready    time.Duration // how long every subscriber may take to receive both tracks
	Duration time.Duration // the measured window, sending
	Drain    time.Duration // how long to wait for late packets after it
	CPU      func() time.Duration
}

// Measure sends p's load through sink until every counter has received
// both tracks (subscribers that have not within w.Ready are counted as
// not connected, and their packets as lost), then for w.Duration, waits
// w.Drain, and returns what the counters received of the packets sent in
// that window.
func Measure(ctx context.Context, p *Publisher, sink Sink, counters []*Counter, w Window) (Result, error) {
	ready := func() int {
		n := 0
		for _, c := range counters {
			if c.Ready() {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(w.Ready)
	for ready() < len(counters) && time.Now().Before(deadline) {
		if _, err := p.Run(ctx, 200*time.Millisecond, sink); err != nil {
			return Result{}, fmt.Errorf("warming up: %w", err)
		}
	}
	connected := ready()
	// A little more, so that the last to connect are past their first
	// keyframe request.
	if _, err := p.Run(ctx, time.Second, sink); err != nil {
		return Result{}, fmt.Errorf("warming up: %w", err)
	}
	from, cpu0, start := p.Sent, w.CPU(), time.Now()
	behind, err := p.Run(ctx, w.Duration, sink)
	if err != nil {
		return Result{}, err
	}
	seconds := time.Since(start).Seconds()
	to := p.Sent
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(w.Drain):
	}
	r := Result{Server: w.Server, Subscribers: len(counters), Connected: connected, Seconds: seconds,
		Sent:     Sent{Audio: to.Audio - from.Audio, Video: to.Video - from.Video},
		BehindMs: float64(behind) / float64(time.Millisecond), GenCPUMs: float64(w.CPU()-cpu0) / float64(time.Millisecond)}
	for _, c := range counters {
		a, v := c.Received(from, to)
		r.Audio += a
		r.Video += v
		o, d, g := c.Extra()
		r.Other += o
		r.Dups += d
		r.SeqGaps += g
	}
	return r, nil
}
