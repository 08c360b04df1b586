// Command load is bench/mediaload's load against LiveKit: one publisher,
// a server-sdk-go client (pion/webrtc v4), sends one Opus-sized audio
// track and one VP8 video track (bench/mediasynth's synthetic packets, on
// a schedule fixed from the start whatever comes back) to -subscribers
// server-sdk-go clients in the same process, which count what they
// receive. It prints what mediaload prints, with the same "RESULT" line.
//
// It is a module of its own so that LiveKit's dependencies (pion v4,
// livekit/protocol) stay out of Parley's go.mod.
//
//	go run . -url ws://127.0.0.1:7880 -api-key devkey -api-secret secret -subscribers 10 -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/parleyuc/parley/bench/mediasynth"
)

// Bounds of the flags: the generator is for one machine's loopback.
const (
	maxSubscribers = 500
	maxDuration    = 5 * time.Minute
)

type config struct {
	url, key, secret, room string
	subscribers            int
	duration, ready, drain time.Duration
	parallel               int
	serverPID              int
	load                   mediasynth.Load
}

func main() {
	var c config
	c.load = mediasynth.DefaultLoad
	flag.StringVar(&c.url, "url", "ws://127.0.0.1:7880", "LiveKit's `URL`")
	flag.StringVar(&c.key, "api-key", "devkey", "the API `key` (livekit-server --dev: devkey)")
	flag.StringVar(&c.secret, "api-secret", "secret", "the API `secret` (livekit-server --dev: secret)")
	flag.StringVar(&c.room, "room", "bench", "the room's `name`")
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
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	quiet()
	r, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}

// quiet logs the SDK's and pion's warnings only.
func quiet() {
	logger.InitFromConfig(&logger.Config{Level: "warn"}, "load")
	lksdk.SetLogger(logger.GetLogger())
}

// validate returns an error naming the first flag out of bounds.
func (c config) validate() error {
	switch {
	case c.url == "":
		return errors.New("-url is required")
	case c.key == "" || c.secret == "":
		return errors.New("-api-key and -api-secret are required")
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

func (c config) connect(identity string, cb *lksdk.RoomCallback) (*lksdk.Room, error) {
	return lksdk.ConnectToRoom(c.url, lksdk.ConnectInfo{APIKey: c.key, APISecret: c.secret, RoomName: c.room,
		ParticipantIdentity: identity}, cb, lksdk.WithAutoSubscribe(true))
}

// subscriber connects and counts the packets of the tracks it is sent.
func (c config) subscriber(identity string) (*lksdk.Room, *mediasynth.Counter, error) {
	count := &mediasynth.Counter{}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(tr *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		go func() {
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				if pkt.Unmarshal(buf[:n]) == nil {
					count.Add(video, pkt.SequenceNumber, pkt.Payload)
				}
			}
		}()
	}
	room, err := c.connect(identity, cb)
	return room, count, err
}

// publisher connects and publishes the audio and video tracks; it
// returns the sink that writes to them.
func (c config) publisher() (*lksdk.Room, mediasynth.Sink, error) {
	room, err := c.connect("pub", lksdk.NewRoomCallback())
	if err != nil {
		return nil, nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera")
	if err != nil {
		room.Disconnect()
		return nil, nil, err
	}
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
	if err != nil {
		room.Disconnect()
		return nil, nil, err
	}
	if _, err := room.LocalParticipant.PublishTrack(audio, &lksdk.TrackPublicationOptions{Name: "audio", Source: livekit.TrackSource_MICROPHONE}); err != nil {
		room.Disconnect()
		return nil, nil, fmt.Errorf("publishing audio: %w", err)
	}
	if _, err := room.LocalParticipant.PublishTrack(video, &lksdk.TrackPublicationOptions{Name: "video", Source: livekit.TrackSource_CAMERA,
		VideoWidth: 640, VideoHeight: 360}); err != nil {
		room.Disconnect()
		return nil, nil, fmt.Errorf("publishing video: %w", err)
	}
	var h rtp.Packet
	h.Version = 2
	sink := func(pkt *mediasynth.Packet) error {
		h.SequenceNumber, h.Timestamp, h.Marker, h.Payload = pkt.Seq, pkt.Timestamp, pkt.Marker, pkt.Payload
		tr := audio
		if pkt.Video {
			tr = video
		}
		err := tr.WriteRTP(&h)
		if errors.Is(err, io.ErrClosedPipe) {
			return nil // not yet bound
		}
		return err
	}
	return room, sink, nil
}

// run joins the publisher and the subscribers and measures.
func run(ctx context.Context, c config) (mediasynth.Result, error) {
	pubRoom, sink, err := c.publisher()
	if err != nil {
		return mediasynth.Result{}, fmt.Errorf("the publisher: %w", err)
	}
	defer pubRoom.Disconnect()
	rooms := make([]*lksdk.Room, c.subscribers)
	counters := make([]*mediasynth.Counter, c.subscribers)
	defer func() {
		for _, r := range rooms {
			if r != nil {
				r.Disconnect()
			}
		}
	}()
	// The publisher sends while the subscribers join, as in a meeting.
	p := mediasynth.NewPublisher(c.load)
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
	for i := range rooms {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			rooms[i], counters[i], errs[i] = c.subscriber(fmt.Sprintf("s%d", i))
		})
	}
	wg.Wait()
	stopWarm()
	<-warmed
	for i, err := range errs {
		if err != nil {
			return mediasynth.Result{}, fmt.Errorf("subscriber %d: %w", i, err)
		}
	}
	return mediasynth.Measure(ctx, p, sink, counters, mediasynth.Window{Server: "livekit", Ready: c.ready, Duration: c.duration,
		Drain: c.drain, CPU: mediasynth.ProcessCPU, ServerPID: mediasynth.Proc(c.serverPID), RSSEvery: 250 * time.Millisecond})
}
