package media

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkForward measures the bridge forwarding one publisher's audio
// and video to 50 listeners, everything on loopback in this process: the
// publisher writes b.N packets (audio and video in turn, 160 and 1,000
// bytes) at 1,000 packets a second (a camera at a few Mbit/s with its
// audio), in bursts of 10, and the run ends when the
// listeners have received them. It reports forwarded packets per second
// (packets received by all listeners, over the wall time), CPU per
// forwarded packet (the whole process: bridge, publisher, and the 50 pion
// listeners decrypting what they receive), the share of packets
// delivered, and the heap per listener (its bridge session and its pion
// client together).
func BenchmarkForward(b *testing.B) {
	const listeners = 50
	const inputRate = 1000 // packets per second from the publisher
	e := newEnv(b, time.Time{})
	before := heapInuse()
	subs := make([]*client, listeners)
	for i := range subs {
		subs[i] = e.join(e.enter(fmt.Sprintf("u%d", i)), clientOptions{})
	}
	org := e.enter("alice")
	pub := e.join(org, clientOptions{publish: []string{KindAudio, KindVideo}, noSend: true})
	audio, video := pub.locals[0], pub.locals[1]
	total := func() int {
		n := 0
		for _, s := range subs {
			n += s.total()
		}
		return n
	}
	seq := uint16(0)
	write := func(i int) {
		seq++
		if i%2 == 0 {
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: make([]byte, 160)})
		} else {
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: make([]byte, 1000)})
		}
	}
	// Until every listener receives both tracks.
	keys := []string{org.ID + "/" + org.ID + "-audio", org.ID + "/" + org.ID + "-video"}
	i := 0
	eventually(b, 60*time.Second, "every listener receives both tracks", func() bool {
		write(i)
		write(i + 1)
		i += 2
		for _, s := range subs {
			if s.stats(keys[0]).packets == 0 || s.stats(keys[1]).packets == 0 {
				return false
			}
		}
		return true
	})
	perListener := float64(heapInuse()-before) / listeners
	time.Sleep(200 * time.Millisecond)
	base := total()
	cpu0, start := cpuTime(), time.Now()
	b.ResetTimer()
	tick := time.NewTicker(time.Second / inputRate * 10)
	for n := range b.N {
		write(n)
		if n%10 == 9 {
			<-tick.C
		}
	}
	tick.Stop()
	want := b.N * listeners
	last, lastChange := 0, time.Now()
	for {
		got := total() - base
		if got >= want || time.Since(lastChange) > 2*time.Second {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	got := total() - base
	b.ReportMetric(float64(got)/elapsed.Seconds(), "fwd-pkts/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(got, 1)), "cpu-ns/fwd-pkt")
	b.ReportMetric(float64(got)/float64(want), "delivered")
	b.ReportMetric(perListener, "heap-B/listener")
}
