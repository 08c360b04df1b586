package media

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/parleyuc/parley/conference"
)

// Downlink bandwidth: every packet the bridge sends a participant
// carries a transport-wide sequence number (the TWCC header extension),
// the participant's receiver reports when each arrived (transport-cc
// RTCP feedback), and a send-side estimator per connection (downlink,
// in bwe_estimate.go: delay- and loss-based) turns that into the
// bitrate the path carries. Every allocInterval the room shares each
// subscriber's estimate, less the audio it is sent, among the videos it
// receives (an Allocator), and each video's layer is capped at what it
// was given. What is sent to a subscriber leaves at no more than 2.5
// times its estimate (pacer, in pace.go), and its requests for a
// keyframe are held while the last one sent may still be crossing a
// slow link (downTrack.keyframeOnItsWay).

const (
	// allocInterval is how often subscribers' estimates are shared out
	// and the layers' bitrates measured.
	allocInterval = 500 * time.Millisecond
	// initialEstimate is a new connection's estimate, bits/s. The
	// bridge probes only before a switch up on a downlink that has shown
	// a limit (probe.go), and the estimator raises an estimate by about
	// 8 % a second, so it starts above what a meeting sends (everything
	// fits) and lets the delay and loss a weak path shows bring it down,
	// within a second or two.
	initialEstimate = 10_000_000
	// minEstimate is the least the estimator estimates, bits/s.
	minEstimate = 30_000
)

// LayerPaused is an allocation that sends nothing of a video: not even
// its low layer fits the subscriber's downlink.
const LayerPaused Layer = -1

// Video priorities, highest first.
const (
	PriorityScreen  = 0 // a screen share
	PrioritySpeaker = 1 // the active speaker's camera
	PriorityOther   = 2 // other cameras
)

// Video is one video a subscriber receives, as an Allocator sees it.
type Video struct {
	Publisher conference.ParticipantID
	Kind      string // KindVideo or KindScreen
	// Priority is PriorityScreen, PrioritySpeaker or PriorityOther.
	// The bridge knows no speaker yet (it reads no audio levels): the
	// camera published last stands for the active speaker, and the
	// others follow in the order they were published, newest first.
	Priority int
	// Bitrates is what each layer arrives at on the bridge now, in
	// bits/s (measured over the last allocInterval, smoothed); 0 for a
	// layer not being sent. Video sent without simulcast is LayerLow.
	Bitrates [numLayers]int
	// Max is the highest layer the subscriber may get:
	// Session.SetMaxLayer's choice, LayerHigh by default.
	Max Layer
}

// Allocator shares a subscriber's downlink among the videos it
// receives. Allocate is given the bitrate available for video (the
// estimate less the audio the subscriber is sent; it may be negative)
// and the videos, and sets layers[i], for videos[i], to the highest
// layer to send or LayerPaused. The bridge then sends the highest layer
// at most that which the publisher is sending, switching at keyframes.
// It is called for each subscriber every half second from one
// goroutine per meeting; videos and layers are reused between calls.
type Allocator interface {
	Allocate(budget int, videos []Video, layers []Layer)
}

// DefaultAllocator is the bridge's Allocator. It serves the videos by
// priority (screen shares, then the speaker's camera, then the others,
// each in the order given), giving each the highest layer at most Max
// whose bitrate fits what is left, and pausing one of which no layer
// fits, unless it is sent without simulcast (one layer): that is sent
// anyway. A video none of whose layers has been measured yet (it has
// just started) gets Max and costs nothing.
type DefaultAllocator struct{}

// Allocate implements Allocator.
func (DefaultAllocator) Allocate(budget int, videos []Video, layers []Layer) {
	left := budget
	for prio := PriorityScreen; prio <= PriorityOther; prio++ {
		for i := range videos {
			v := &videos[i]
			p := min(max(v.Priority, PriorityScreen), PriorityOther)
			if p != prio {
				continue
			}
			chosen, cost, measured := LayerPaused, 0, false
			for l := v.Max; l >= LayerLow; l-- {
				if rate := v.Bitrates[l]; rate > 0 {
					measured = true
					if rate <= left {
						chosen, cost = l, rate
						break
					}
				}
			}
			if chosen == LayerPaused && single(v.Bitrates) {
				// Video sent without simulcast has nothing lower to fall
				// back to: paused on an estimate (which has no probing to
				// recover with), it would freeze; it is sent, and the
				// others get what is left.
				chosen, cost = LayerLow, v.Bitrates[LayerLow]
			}
			if !measured {
				// Nothing at most Max is being sent: the bridge sends the
				// lowest layer above it that is, if any.
				chosen = v.Max
				for l := v.Max + 1; int(l) < numLayers; l++ {
					if rate := v.Bitrates[l]; rate > 0 {
						if rate > left {
							chosen = LayerPaused
						} else {
							cost = rate
						}
						break
					}
				}
			}
			layers[i] = chosen
			left -= cost
		}
	}
}

// single reports whether rates are those of a video sent without
// simulcast: its one layer, LayerLow, alone measured.
func single(rates [numLayers]int) bool {
	return rates[LayerLow] > 0 && rates[LayerMid] == 0 && rates[LayerHigh] == 0
}

// rateMeter measures a stream's bitrate from the bytes counted for
// each packet; the room's goroutine samples it every allocInterval.
type rateMeter struct {
	bytes atomic.Uint64
	rate  atomic.Int64 // bits/s, smoothed
	last  uint64       // bytes at the last sample (the room's goroutine only)
}

func (m *rateMeter) add(n int) { m.bytes.Add(uint64(n)) }

// sample updates the rate from the bytes counted since the last sample,
// elapsed ago: the mean of the last two windows.
func (m *rateMeter) sample(elapsed time.Duration) {
	b := m.bytes.Load()
	n := b - m.last
	m.last = b
	if elapsed <= 0 {
		return
	}
	now := int64(float64(n*8) / elapsed.Seconds())
	m.rate.Store((m.rate.Load() + now) / 2)
}

// measure samples the bitrates of the room's tracks and their layers.
func (r *room) measure(tracks []*forward, elapsed time.Duration) {
	for _, f := range tracks {
		f.meter.sample(elapsed)
		for i := range f.layers {
			if l := f.layers[i].Load(); l != nil {
				l.meter.sample(elapsed)
			}
		}
	}
}

// allocate measures the room's tracks and shares each subscriber's
// downlink among the videos it receives.
func (r *room) allocate(elapsed time.Duration, sc *allocScratch) {
	r.mu.Lock()
	sc.tracks = append(sc.tracks[:0], r.tracks...)
	sc.sessions = sc.sessions[:0]
	for _, s := range r.sessions {
		sc.sessions = append(sc.sessions, s)
	}
	r.mu.Unlock()
	r.measure(sc.tracks, elapsed)
	for _, s := range sc.sessions {
		s.allocate(r.b.cfg.Allocator, sc)
	}
	clear(sc.tracks)
	clear(sc.sessions)
}

// allocScratch is what a room's allocation reuses from one round to
// the next.
type allocScratch struct {
	tracks   []*forward
	sessions []*Session
	downs    []*downTrack
	videos   []Video
	layers   []Layer
}

// allocate shares the session's downlink estimate among the videos it
// receives and caps each at the layer it was given.
func (s *Session) allocate(a Allocator, sc *allocScratch) {
	s.mu.Lock()
	est := s.est
	if s.closed || est == nil {
		s.mu.Unlock()
		return
	}
	budget := 0
	for f := range s.senders {
		if f.kind == KindAudio {
			budget -= int(f.meter.rate.Load())
		}
	}
	sc.downs = sc.downs[:0]
	for _, d := range s.downs {
		sc.downs = append(sc.downs, d)
	}
	s.mu.Unlock()
	budget += est.GetTargetBitrate()
	// Screen shares first, then cameras newest first.
	slices.SortFunc(sc.downs, func(a, b *downTrack) int {
		if (a.f.kind == KindScreen) != (b.f.kind == KindScreen) {
			if a.f.kind == KindScreen {
				return -1
			}
			return 1
		}
		switch {
		case a.f.since > b.f.since:
			return -1
		case a.f.since < b.f.since:
			return 1
		}
		return 0
	})
	sc.videos, sc.layers = sc.videos[:0], sc.layers[:0]
	camera := false
	for _, d := range sc.downs {
		v := Video{Publisher: d.f.owner.pid, Kind: d.f.kind, Priority: PriorityOther, Max: d.maxLayer()}
		switch {
		case d.f.kind == KindScreen:
			v.Priority = PriorityScreen
		case !camera:
			v.Priority, camera = PrioritySpeaker, true
		}
		for i := range d.f.layers {
			if l := d.f.layers[i].Load(); l != nil && !l.stale(time.Now().UnixNano()) {
				v.Bitrates[i] = int(l.meter.rate.Load())
			}
		}
		sc.videos = append(sc.videos, v)
		sc.layers = append(sc.layers, LayerHigh)
	}
	a.Allocate(budget, sc.videos, sc.layers)
	now := time.Now().UnixNano()
	for i, d := range sc.downs {
		d.allocate(sc.layers[i], now)
	}
	clear(sc.downs)
}

// DownlinkEstimate returns the bridge's estimate of the bitrate the
// path to the participant carries, in bits/s, from the transport-wide
// congestion control feedback its client sends (transport-cc); 0 before the session has a connection. A
// client that sends no feedback keeps the initial estimate, 10 Mbit/s.
func (s *Session) DownlinkEstimate() int {
	s.mu.Lock()
	est := s.est
	s.mu.Unlock()
	if est == nil {
		return 0
	}
	return est.GetTargetBitrate()
}
