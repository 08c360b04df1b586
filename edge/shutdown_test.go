package edge

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun"
)

// TestRelayShutdownDrains: Shutdown refuses new allocations (508) while
// the open one keeps working, returns nil once its client deletes it, and
// leaves the relay closed.
func TestRelayShutdownDrains(t *testing.T) {
	e := newRelay(t)
	s := e.udpSession("alice@example.test")
	idle, err := net.Dial("tcp4", e.tcp) // a TCP connection without an allocation
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond) // accepted

	done := make(chan error, 1)
	go func() { done <- e.relay.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)

	if _, err := allocate(t, e.client(e.secrets.Issue("bob@example.test", time.Hour))); err == nil || !strings.Contains(err.Error(), "508") {
		t.Errorf("a new allocation while draining: %v, want 508", err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	var ne net.Error
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the idle TCP connection is still open while draining: %v", err)
	}
	if m := s.ask(buildReq(stun.MethodRefresh, &s.cred, s.nonce)); m.Type.Class != stun.ClassSuccessResponse {
		t.Errorf("the open allocation's Refresh while draining: %v %d", m.Type, errorCode(m))
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned with an allocation open: %v", err)
	default:
	}
	// Alice's call ends: she deletes her allocation.
	if m := s.ask(buildReq(stun.MethodRefresh, &s.cred, s.nonce, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}})); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("deleting the allocation: %v %d", m.Type, errorCode(m))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return once the allocation ended")
	}
	if _, err := net.DialTimeout("tcp4", e.tcp, time.Second); err == nil {
		t.Error("the TCP listener accepts after Shutdown")
	}
}

// TestRelayShutdownCutShortByContext: when ctx ends first, Shutdown
// returns ctx.Err() and closes what is left, UDP and TCP allocations.
func TestRelayShutdownCutShortByContext(t *testing.T) {
	e := newRelay(t, loopbackPeers)
	if _, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour))); err != nil {
		t.Fatal(err)
	}
	alloc, err := e.tcpClient(e.secrets.Issue("bob@example.test", time.Hour)).AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, alloc)
	peer, _ := tcpEchoPeer(t)
	if _, err := alloc.DialTCPWithConn(e.dataConn(), "tcp4", peer); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = e.relay.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("Shutdown took %v with a 300 ms context", d)
	}
	waitUntil(t, func() bool { m := e.relay.Metrics(); return m.Allocations == 0 && m.TCPConnections == 0 })
}
