// Command mediaload is an open-loop load generator for Parley's media
// bridge as bench/bridgeserver serves it: one publisher, a pion/webrtc
// client, sends one Opus-sized audio track and one VP8 video track
// (bench/mediasynth's synthetic packets, on a schedule fixed from the
// start whatever comes back) to -subscribers pion clients, each in the
// same process, which count what they receive.
//
// It waits until every subscriber receives both tracks (at most -ready),
// then measures for -duration: it reports the packets sent in that
// window, those delivered to the subscribers (by the index each payload
// carries), loss, delivered packets per second and its own CPU, then a
// line starting "RESULT" with the same figures as key=value pairs for
// scripts (bench/bridge.sh). bench/livekit/load is the same load against
// LiveKit.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/parleyuc/parley/bench/mediasynth"
)

// Bounds of the flags: the generator is for one machine's loopback.
const (
	maxSubscribers = 500
	maxDuration    = 5 * time.Minute
)

type config struct {
	server      string
	subscribers int
	duration    time.Duration
	ready       time.Duration
	drain       time.Duration
	parallel    int
	serverPID   int
	load        mediasynth.Load
}

func main() {
	var c config
	c.load = mediasynth.DefaultLoad
	flag.StringVar(&c.server, "server", "http://127.0.0.1:7880", "the bridgeserver's signaling `URL`")
	flag.IntVar(&c.subscribers, "subscribers", 10, "how many subscribers")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long to measure")
	flag.DurationVar(&c.ready, "ready", 60*time.Second, "how long the subscribers may take to receive both tracks")
	flag.DurationVar(&c.drain, "drain", time.Second, "how long to wait for late packets after the last send")
	flag.IntVar(&c.parallel, "parallel", 4, "subscribers joining at once")
	flag.IntVar(&c.serverPID, "server-pid", 0, "the server's process `id`, to report its CPU and RSS from /proc (0: not reported)")
	flag.IntVar(&c.load.FPS, "fps", c.load.FPS, "video frames per second")
	flag.IntVar(&c.load.FramePackets, "frame-packets", c.load.FramePackets, "packets of a delta frame")
	flag.IntVar(&c.load.KeyPackets, "key-packets", c.load.KeyPackets, "packets of a keyframe")
	flag.DurationVar(&c.load.KeyInterval, "key-interval", c.load.KeyInterval, "time between keyframes")
	flag.IntVar(&c.load.VideoBytes, "video-bytes", c.load.VideoBytes, "video payload bytes per packet")
	flag.IntVar(&c.load.AudioBytes, "audio-bytes", c.load.AudioBytes, "audio payload bytes per packet")
	flag.Parse()
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "mediaload:", err)
		os.Exit(2)
	}
	r, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mediaload:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}

// validate returns an error naming the first flag out of bounds.
func (c config) validate() error {
	switch {
	case c.subscribers < 1 || c.subscribers > maxSubscribers:
		return fmt.Errorf("-subscribers %d: want 1 to %d", c.subscribers, maxSubscribers)
	case c.duration <= 0 || c.duration > maxDuration:
		return fmt.Errorf("-duration %v: want up to %v", c.duration, maxDuration)
	case c.ready <= 0:
		return fmt.Errorf("-ready %v: must be positive", c.ready)
	case c.drain < 0:
		return fmt.Errorf("-drain %v: must not be negative", c.drain)
	case c.serverPID < 0:
		return fmt.Errorf("-server-pid %d: must not be negative", c.serverPID)
	case c.parallel < 1:
		return fmt.Errorf("-parallel %d: must be at least 1", c.parallel)
	}
	if err := c.load.Validate(); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}
