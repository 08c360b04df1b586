package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/parleyuc/parley/pki"
)

// TestListenerLimits: the SIP listeners cut a connection that does not
// handshake, refuse connections over the per-address cap (the edge's
// too), and SIP over WebSocket takes pages of the server's own HTTPS
// origin only.
func TestListenerLimits(t *testing.T) {
	s := startServer(t, t.TempDir(), "-max-conns-per-address", "3", "-handshake-timeout", "500ms")
	dial := func(name, localIP string) (*tls.Conn, error) {
		serverName := "localhost"
		if name == "edge-users" {
			serverName = "edge.example.test"
		}
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
		raw, err := d.Dial("tcp", s.listeners[name])
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, pki.ClientTLSConfig(nil, s.verifier(t), serverName))
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, c.Handshake()
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := io.Copy(io.Discard, c)
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}

	raw, err := net.Dial("tcp", s.listeners["sip-tls"])
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if !closed(raw) {
		t.Fatal("sip-tls kept a connection that never handshook")
	}

	for i := range 3 {
		if _, err := dial("edge-users", "127.0.0.2"); err != nil {
			t.Fatalf("edge-users connection %d: %v", i, err)
		}
	}
	if c, err := dial("edge-users", "127.0.0.2"); err == nil && !closed(c) {
		t.Fatal("edge-users kept a connection over the per-address cap")
	}
	if _, err := dial("edge-users", "127.0.0.3"); err != nil {
		t.Fatalf("edge-users from another address: %v", err)
	}

	_, httpsPort, _ := net.SplitHostPort(s.listeners["https"])
	for _, tc := range []struct {
		origin string
		want   int
	}{{"https://evil.example", http.StatusForbidden}, {"https://localhost:" + httpsPort, http.StatusSwitchingProtocols}} {
		c, err := dial("sip-wss", "127.0.0.4")
		if err != nil {
			t.Fatal(err)
		}
		req := "GET / HTTP/1.1\r\nHost: " + s.listeners["sip-wss"] + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\nOrigin: " + tc.origin + "\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != tc.want {
			t.Fatalf("SIP over WebSocket from %s: %v %v, want %d", tc.origin, res, err, tc.want)
		}
	}
}
