package synth

import (
	"sync"
	"time"
)

// StallTick is how often a stall meter's clock ticks.
const StallTick = 10 * time.Millisecond

// StallMeter measures how late a process's goroutines run: a ticker
// every StallTick, whose ticks arriving late mean the process (or the
// machine) stalled, whatever the network did. A test on a busy machine
// tells its stalls from the bridge's faults with it.
type StallMeter struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	stalls []stall // over 2 ticks late
}

type stall struct {
	at  time.Time // when it ended
	gap time.Duration
}

// NewStallMeter starts a stall meter; Close stops it.
func NewStallMeter() *StallMeter {
	m := &StallMeter{stop: make(chan struct{})}
	m.wg.Go(m.run)
	return m
}

func (m *StallMeter) run() {
	tick := time.NewTicker(StallTick)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case now := <-tick.C:
			if gap := now.Sub(last); gap > 3*StallTick {
				m.mu.Lock()
				m.stalls = append(m.stalls, stall{now, gap})
				m.mu.Unlock()
			}
			last = now
		}
	}
}

// Longest returns the longest stall that ended after from.
func (m *StallMeter) Longest(from time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d time.Duration
	for _, s := range m.stalls {
		if s.at.After(from) {
			d = max(d, s.gap)
		}
	}
	return d
}

// Close stops the meter's clock.
func (m *StallMeter) Close() {
	close(m.stop)
	m.wg.Wait()
}
