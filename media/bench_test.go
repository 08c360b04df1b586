package media

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
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
// client together) once they all receive, and after the run.
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
	keys := []string{string(string(org.ID) + "/" + string(org.ID) + "-audio"), string(string(org.ID) + "/" + string(org.ID) + "-video")}
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
	// After the run: what each listener's connection keeps for
	// retransmission (its video's packets for the round trip) is in.
	b.ReportMetric(float64(heapInuse()-before)/listeners, "heap-B/listener-after")
}

// srtpPayloads are the RTP payload sizes the SRTP benchmarks measure: a
// 20 ms G.711 frame and a video packet.
var srtpPayloads = []int{160, 1200}

// srtpBenchContext returns an SRTP context for suite s with a fixed key;
// opts are pion/srtp's context options.
func srtpBenchContext(b *testing.B, s suite, opts ...srtp.ContextOption) *srtp.Context {
	b.Helper()
	key, salt := make([]byte, s.keyLen), make([]byte, s.saltLen)
	for i := range key {
		key[i] = byte(i)
	}
	for i := range salt {
		salt[i] = byte(0x80 + i)
	}
	ctx, err := srtp.CreateContext(key, salt, s.profile, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return ctx
}

// srtpPlain returns an RTP packet (12-byte header) with a payload of n
// bytes and sequence number seq, and its header.
func srtpPlain(b *testing.B, n int, seq uint16) ([]byte, *rtp.Header) {
	b.Helper()
	h := &rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x1234abcd}
	pkt := make([]byte, 12+n)
	if _, err := h.MarshalTo(pkt); err != nil {
		b.Fatal(err)
	}
	for i := range pkt[12:] {
		pkt[12+i] = byte(i)
	}
	return pkt, h
}

// BenchmarkSRTPProtect measures Call.send's SRTP step: one RTP packet
// encrypted and authenticated with pion/srtp, for each suite the bridge
// accepts and each payload size. Each packet has the next sequence number
// (rewritten in place, as the sender does). The output buffer is reused;
// MB/s counts the payload.
func BenchmarkSRTPProtect(b *testing.B) {
	for _, s := range suites {
		for _, n := range srtpPayloads {
			b.Run(fmt.Sprintf("%s/%d", s.name, n), func(b *testing.B) {
				ctx := srtpBenchContext(b, s)
				pkt, h := srtpPlain(b, n, 1)
				dst := make([]byte, 0, len(pkt)+64)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				seq := uint16(1)
				for b.Loop() {
					seq++
					pkt[2], pkt[3] = byte(seq>>8), byte(seq)
					out, err := ctx.EncryptRTP(dst, pkt, h)
					if err != nil {
						b.Fatal(err)
					}
					dst = out[:0]
				}
			})
		}
	}
}

// BenchmarkSRTPUnprotect measures Call.read's SRTP step: one SRTP packet
// authenticated and decrypted. Encrypting a fresh packet inside the loop
// would measure encryption too, so a ring of 4,096 packets with
// increasing sequence numbers is encrypted before the timer starts and
// decrypted in turn. The decrypting context has NO replay protection
// (pion's SRTPNoReplayProtection): with it, the ring's second pass would
// be refused as replays. The bridge's calls check a 128-packet window
// (srtp.SRTPReplayProtection(128) in newCall), a bit test and a shift per
// packet that these figures leave out.
func BenchmarkSRTPUnprotect(b *testing.B) {
	const ring = 4096
	for _, s := range suites {
		for _, n := range srtpPayloads {
			b.Run(fmt.Sprintf("%s/%d", s.name, n), func(b *testing.B) {
				enc := srtpBenchContext(b, s)
				packets := make([][]byte, ring)
				for i := range packets {
					pkt, h := srtpPlain(b, n, uint16(1+i))
					out, err := enc.EncryptRTP(nil, pkt, h)
					if err != nil {
						b.Fatal(err)
					}
					packets[i] = out
				}
				dec := srtpBenchContext(b, s, srtp.SRTPNoReplayProtection())
				dst := make([]byte, 0, 12+n+64)
				var h rtp.Header
				b.SetBytes(int64(n))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					out, err := dec.DecryptRTP(dst, packets[i%ring], &h)
					if err != nil {
						b.Fatal(err)
					}
					dst = out[:0]
					i++
				}
			})
		}
	}
}

// BenchmarkAESGCMRaw is AES-GCM from the standard library (crypto/aes and
// crypto/cipher) alone, for the SRTP figures to compare with: Seal and
// Open of the same payloads with a 12-byte nonce and the 12-byte RTP
// header as additional data, as SRTP's AEAD suites do (RFC 7714).
func BenchmarkAESGCMRaw(b *testing.B) {
	for _, bits := range []int{128, 256} {
		key := make([]byte, bits/8)
		for i := range key {
			key[i] = byte(i)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			b.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			b.Fatal(err)
		}
		nonce := make([]byte, aead.NonceSize())
		for _, n := range srtpPayloads {
			header := make([]byte, 12)
			payload := make([]byte, n)
			sealed := aead.Seal(nil, nonce, payload, header)
			b.Run(fmt.Sprintf("Seal/AES-%d/%d", bits, n), func(b *testing.B) {
				dst := make([]byte, 0, n+aead.Overhead())
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					dst = aead.Seal(dst[:0], nonce, payload, header)
				}
			})
			b.Run(fmt.Sprintf("Open/AES-%d/%d", bits, n), func(b *testing.B) {
				dst := make([]byte, 0, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					out, err := aead.Open(dst[:0], nonce, sealed, header)
					if err != nil {
						b.Fatal(err)
					}
					dst = out
				}
			})
		}
	}
}
