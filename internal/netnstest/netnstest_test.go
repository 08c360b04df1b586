package netnstest

import (
	"net"
	"os"
	"testing"
	"time"
)

// count receives datagrams on c until nothing arrives for 500 ms: how
// many, and the time from the first to the last.
func count(c net.PacketConn) (n int, span time.Duration) {
	buf := make([]byte, 2048)
	var first, last time.Time
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err != nil {
			return n, last.Sub(first)
		}
		last = time.Now()
		if n == 0 {
			first = last
		}
		n++
	}
}

// A namespace's link loses about the share of UDP datagrams it is set
// to lose toward the namespace, and carries no more than its rate from
// it; and a namespace without either reaches the switch with none lost.
//
// It runs only with PARLEY_WEAK_LINK=1, as .ci/run runs it, after the
// suite: the interfaces it adds are a network change to every browser
// running beside it (Chromium fails its page loads with
// ERR_NETWORK_CHANGED), and browser tests run in the suite.
func TestLinkShapes(t *testing.T) {
	if os.Getenv("PARLEY_WEAK_LINK") == "" {
		t.Skip("changes the host's network under the browser tests: run it with PARLEY_WEAK_LINK=1 (as root, with iproute2 and nftables), as .ci/run does")
	}
	sw := NewSwitch(t)
	lossy := sw.Add(t, Link{Down: Shape{Loss: 20}, Up: Shape{Rate: "1mbit", Queue: "2s"}})
	clear := sw.Add(t, Link{})
	host, err := net.ListenPacket("udp4", sw.IP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()

	// 1,000 datagrams toward the lossy namespace, 1 ms apart.
	in, err := lossy.ListenUDP(lossy.IP + ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	go func() {
		for range 1000 {
			_, _ = host.WriteTo(make([]byte, 100), in.LocalAddr())
			time.Sleep(time.Millisecond)
		}
	}()
	if n, _ := count(in); n < 700 || n > 900 {
		t.Errorf("%d of 1,000 datagrams crossed a link losing 20 %%", n)
	}

	// 250 KB from it as fast as it sends: 2 s at 1 Mbit/s.
	go func() {
		for range 250 {
			_, _ = in.WriteTo(make([]byte, 1000), host.LocalAddr())
		}
	}()
	n, span := count(host)
	if n < 200 {
		t.Fatalf("%d of 250 datagrams arrived from a 1 Mbit/s link with a 2 s queue: sent faster than that, they overflow the socket", n)
	}
	if rate := float64(n*1000*8) / span.Seconds(); rate > 1.3e6 || rate < 0.7e6 {
		t.Errorf("%d datagrams of 1,000 bytes in %v: %.0f bit/s across a 1 Mbit/s link", n, span, rate)
	}

	// The clear namespace: all of 1,000 arrive.
	out, err := clear.ListenUDP(clear.IP + ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	go func() {
		for range 1000 {
			_, _ = out.WriteTo(make([]byte, 100), host.LocalAddr())
			time.Sleep(100 * time.Microsecond)
		}
	}()
	if n, _ := count(host); n != 1000 {
		t.Errorf("%d of 1,000 datagrams crossed a clear link", n)
	}
}
