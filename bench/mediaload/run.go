package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/parleyuc/parley/bench/mediasynth"
)

// run joins the publisher and the subscribers and measures.
func run(ctx context.Context, c config) (mediasynth.Result, error) {
	api, err := newAPI()
	if err != nil {
		return mediasynth.Result{}, err
	}
	pub, err := join(ctx, api, c.server, "pub", true)
	if err != nil {
		return mediasynth.Result{}, fmt.Errorf("the publisher: %w", err)
	}
	defer pub.close()
	subs := make([]*peer, c.subscribers)
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.close()
			}
		}
	}()
	// The publisher sends while the subscribers join, as in a meeting.
	p := mediasynth.NewPublisher(c.load)
	sink := pub.sink()
	warm, stopWarm := context.WithCancel(ctx)
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		for warm.Err() == nil {
			_, _ = p.Run(warm, c.ready, sink)
		}
	}()
	errs := make([]error, c.subscribers)
	var wg sync.WaitGroup
	slots := make(chan struct{}, c.parallel)
	for i := range subs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			subs[i], errs[i] = join(ctx, api, c.server, fmt.Sprintf("s%d", i), false)
		})
	}
	wg.Wait()
	stopWarm()
	<-warmed
	counters := make([]*mediasynth.Counter, 0, len(subs))
	for i, s := range subs {
		if errs[i] != nil {
			return mediasynth.Result{}, fmt.Errorf("subscriber %d: %w", i, errs[i])
		}
		counters = append(counters, s.count)
	}
	return mediasynth.Measure(ctx, p, sink, counters, mediasynth.Window{Server: "parley", Ready: c.ready, Duration: c.duration,
		Drain: c.drain, CPU: mediasynth.ProcessCPU, ServerPID: mediasynth.Proc(c.serverPID), RSSEvery: 250 * time.Millisecond})
}
