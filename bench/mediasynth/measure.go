package mediasynth

import (
	"context"
	"fmt"
	"time"
)

// Window is what Measure needs besides the publisher.
type Window struct {
	Server   string               // the server's name in the result
	Ready    time.Duration        // how long every subscriber may take to receive both tracks
	Duration time.Duration        // the measured window, sending
	Drain    time.Duration        // how long to wait for late packets after it
	CPU      func() time.Duration // the generator's own
	// ServerPID, if not 0, is the server's process: its CPU time over the
	// window and the drain, and its largest RSS during the window (read
	// every RSSEvery), go into the result.
	ServerPID Proc
	RSSEvery  time.Duration
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
	var srv0, srv1 time.Duration
	var rss int64
	stopRSS, rssDone := make(chan struct{}), make(chan struct{})
	if w.ServerPID != 0 {
		var err error
		if srv0, err = w.ServerPID.CPU(); err != nil {
			return Result{}, err
		}
		go func() {
			defer close(rssDone)
			t := time.NewTicker(max(w.RSSEvery, 10*time.Millisecond))
			defer t.Stop()
			for {
				if n, err := w.ServerPID.RSS(); err == nil {
					rss = max(rss, n)
				}
				select {
				case <-stopRSS:
					return
				case <-t.C:
				}
			}
		}()
	} else {
		close(rssDone)
	}
	from, cpu0, start := p.Sent, w.CPU(), time.Now()
	behind, err := p.Run(ctx, w.Duration, sink)
	close(stopRSS)
	<-rssDone
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
	if w.ServerPID != 0 {
		if srv1, err = w.ServerPID.CPU(); err != nil {
			return Result{}, err
		}
	}
	r := Result{Server: w.Server, Subscribers: len(counters), Connected: connected, Seconds: seconds,
		Sent:     Sent{Audio: to.Audio - from.Audio, Video: to.Video - from.Video},
		BehindMs: float64(behind) / float64(time.Millisecond), GenCPUMs: float64(w.CPU()-cpu0) / float64(time.Millisecond),
		ServerCPUMs: float64(srv1-srv0) / float64(time.Millisecond), ServerRSS: rss}
	for _, c := range counters {
		a, v := c.Received(from, to)
		r.Audio += a
		r.Video += v
		if float64(a+v) < 0.99*float64(r.Sent.Audio+r.Sent.Video) {
			r.Short++
		}
		if v == 0 && r.Sent.Video > 0 {
			r.NoVideo++
		}
		o, d, g := c.Extra()
		r.Other += o
		r.Dups += d
		r.SeqGaps += g
	}
	return r, nil
}
