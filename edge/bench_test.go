package edge

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

// relayUnderTest is a TURN server the throughput benchmark drives: the
// EdgeRelay in this process, or coturn's turnserver beside it.
type relayUnderTest struct {
	addr     string
	user     string
	password string
}

func benchEdgeRelay(b *testing.B) relayUnderTest {
	b.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	secrets := NewSecrets(0, nil)
	r, err := NewEdgeRelay(RelayConfig{Realm: "example.test", Secrets: secrets, UDP: []net.PacketConn{udp},
		RelayAddress: net.IPv4(127, 0, 0, 1), AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Bandwidth: 1 << 40, AllocationsPerUser: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	c := secrets.Issue("bench@example.test", time.Hour)
	return relayUnderTest{addr: udp.LocalAddr().String(), user: c.Username, password: c.Password}
}

// benchCoturn starts coturn's turnserver on loopback, with the same
// realm, a static user, loopback peers allowed and no quota.
func benchCoturn(b *testing.B) relayUnderTest {
	b.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CI") != "" {
			b.Fatal("turnserver (Debian coturn) is not installed")
		}
		b.Skip("turnserver (Debian coturn) is not installed")
	}
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	cmd := exec.Command(bin, "-n", "--listening-ip=127.0.0.1", "--listening-port="+strconv.Itoa(port), "--relay-ip=127.0.0.1",
		"--min-port=40000", "--max-port=49999", "--lt-cred-mech", "--user=bench:bench-password", "--realm=example.test",
		"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--log-file=stdout", "--no-stdout-log",
		"--relay-threads=1")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	// Ready when it answers a Binding request.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := net.Dial("udp4", addr)
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
		_, err := c.Read(make([]byte, 1500))
		_ = c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("turnserver did not start")
		}
	}
	return relayUnderTest{addr: addr, user: "bench", password: "bench-password"}
}

// BenchmarkRelayThroughput relays 200-byte datagrams between 10
// allocations (pion's TURN client, ChannelData) and a loopback echo peer,
// for the EdgeRelay and for coturn in the same run. Each allocation keeps
// 16 datagrams in flight and sends one more for each echo (a closed loop:
// the load follows what the relay sustains instead of overflowing socket
// buffers). It reports datagrams relayed per second (both directions
// count) and Mbit/s.
func BenchmarkRelayThroughput(b *testing.B) {
	const allocations, size, window = 10, 200, 16
	for _, server := range []struct {
		name  string
		start func(*testing.B) relayUnderTest
	}{{"parley", benchEdgeRelay}, {"coturn", benchCoturn}} {
		b.Run(server.name, func(b *testing.B) {
			rs := server.start(b)
			peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 1500)
				for {
					n, from, err := peer.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = peer.WriteTo(buf[:n], from)
				}
			}()
			defer func() { _ = peer.Close(); <-done }()

			var relays []net.PacketConn
			for range allocations {
				conn, _ := net.ListenPacket("udp4", "127.0.0.1:0")
				c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: rs.addr, Conn: conn, Username: rs.user,
					Password: rs.password, Realm: "example.test", LoggerFactory: quietLoggers()})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Listen(); err != nil {
					b.Fatal(err)
				}
				rc, err := c.Allocate()
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = rc.Close(); c.Close(); _ = conn.Close() }()
				// Permission and channel first, outside the timing.
				if _, err := rc.WriteTo([]byte("warm-up"), peer.LocalAddr()); err != nil {
					b.Fatal(err)
				}
				_ = rc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, _, err := rc.ReadFrom(make([]byte, 1500)); err != nil {
					b.Fatal("warm-up echo: ", err)
				}
				relays = append(relays, rc)
			}
			payload := make([]byte, size)
			var echoed atomic.Int64
			target := int64(b.N)
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, rc := range relays {
				wg.Go(func() {
					buf := make([]byte, 1500)
					for range window {
						_, _ = rc.WriteTo(payload, peer.LocalAddr())
					}
					for echoed.Load() < target {
						_ = rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
						if _, _, err := rc.ReadFrom(buf); err != nil {
							for range window { // refill what was lost
								_, _ = rc.WriteTo(payload, peer.LocalAddr())
							}
							continue
						}
						echoed.Add(1)
						_, _ = rc.WriteTo(payload, peer.LocalAddr())
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			relayed := 2 * float64(echoed.Load()) // out to the peer and back
			b.ReportMetric(relayed/b.Elapsed().Seconds(), "relayed-pkts/s")
			b.ReportMetric(relayed*size*8/b.Elapsed().Seconds()/1e6, "Mbit/s")
		})
	}
}

// BenchmarkRelayAllocate measures allocations per second on the
// EdgeRelay: Allocate (401 challenge, then the authenticated request) and
// the allocation's release, from raw STUN clients.
func BenchmarkRelayAllocate(b *testing.B) {
	rs := benchEdgeRelay(b)
	server, _ := net.ResolveUDPAddr("udp4", rs.addr)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		rawAllocate(b, conn, server, rs, 600)
		rawRefresh(b, conn, server, rs, 0) // release
		_ = conn.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocations/s")
}

// BenchmarkRelayMemoryPerAllocation holds 1,000 allocations on the
// EdgeRelay (raw STUN clients, which keep no state in this heap) and
// reports the heap they take.
func BenchmarkRelayMemoryPerAllocation(b *testing.B) {
	const n = 1000
	for b.Loop() {
		rs := benchEdgeRelay(b)
		server, _ := net.ResolveUDPAddr("udp4", rs.addr)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]net.PacketConn, n)
		for i := range conns {
			conns[i], _ = net.ListenPacket("udp4", "127.0.0.1:0")
			rawAllocate(b, conns[i], server, rs, 600)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/allocation")
		for _, c := range conns {
			rawRefresh(b, c, server, rs, 0)
			_ = c.Close()
		}
	}
}

// rawRequest sends a TURN request and returns the response.
func rawRequest(b *testing.B, conn net.PacketConn, server net.Addr, setters ...stun.Setter) *stun.Message {
	m := stun.MustBuild(setters...)
	if _, err := conn.WriteTo(m.Raw, server); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		b.Fatal(err)
	}
	res := &stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil {
		b.Fatal(err)
	}
	return res
}

var nonces sync.Map // local address -> nonce

func rawAllocate(b *testing.B, conn net.PacketConn, server net.Addr, rs relayUnderTest, lifetime int) {
	udp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	ch := rawRequest(b, conn, server, stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udp, stun.Fingerprint)
	var nonce stun.Nonce
	if err := nonce.GetFrom(ch); err != nil {
		b.Fatal("no nonce")
	}
	nonces.Store(conn.LocalAddr().String(), nonce.String())
	res := rawRequest(b, conn, server, stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udp,
		stun.NewUsername(rs.user), stun.NewRealm("example.test"), stun.NewNonce(nonce.String()),
		stun.NewLongTermIntegrity(rs.user, "example.test", rs.password), stun.Fingerprint)
	if res.Type.Class != stun.ClassSuccessResponse {
		b.Fatalf("Allocate: %v", res)
	}
}

func rawRefresh(b *testing.B, conn net.PacketConn, server net.Addr, rs relayUnderTest, lifetime uint32) {
	nonce, _ := nonces.LoadAndDelete(conn.LocalAddr().String())
	lt := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{byte(lifetime >> 24), byte(lifetime >> 16), byte(lifetime >> 8), byte(lifetime)}}
	res := rawRequest(b, conn, server, stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), lt,
		stun.NewUsername(rs.user), stun.NewRealm("example.test"), stun.NewNonce(fmt.Sprint(nonce)),
		stun.NewLongTermIntegrity(rs.user, "example.test", rs.password), stun.Fingerprint)
	if res.Type.Class != stun.ClassSuccessResponse {
		b.Fatalf("Refresh: %v", res)
	}
}
