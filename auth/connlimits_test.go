package auth

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/pki"
)

// rawTLS opens a TLS connection to addr from localIP ("" for the
// default) without sending anything.
func (s *sipServer) rawTLS(t *testing.T, addr, localIP string) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, pki.ClientTLSConfig(nil, s.pki.Verifier, "sip.example.test"))
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		return nil, err
	}
	return c, nil
}

// closedWithin reports whether the server closes c within d (a read
// ends in EOF or a reset, not in our own deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, os.ErrDeadlineExceeded)
}

const optionsMsg = "OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKlim1\r\n" +
	"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=1\r\nTo: <sip:example.test>\r\nCall-ID: lim-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"

func TestConnLimitsTimeouts(t *testing.T) {
	s := startSIPServer(t, Config{ConnLimits: ConnLimits{HandshakeTimeout: 300 * time.Millisecond,
		MessageTimeout: 500 * time.Millisecond, IdleTimeout: 700 * time.Millisecond}})

	// A connection that never handshakes.
	raw, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if !closedWithin(raw, 3*time.Second) {
		t.Fatal("a connection without a TLS handshake was kept")
	}

	// A client dribbling a message one byte at a time, every 50 ms: a
	// read deadline refreshed by every byte would keep it forever.
	c, err := s.rawTLS(t, s.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cut := false
	for i := 0; i < len(optionsMsg)-4 && time.Since(start) < 4*time.Second; i++ {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte{optionsMsg[i]}); err != nil {
			cut = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !cut && !closedWithin(c, time.Second) {
		t.Fatal("a client dribbling a message was kept")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("the dribbler was cut after %v, want about the message timeout", time.Since(start))
	}

	// Keep-alives keep an idle connection; silence ends it.
	k, err := s.rawTLS(t, s.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	_ = k.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(k, optionsMsg); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(k).ReadString('\n'); err != nil || !strings.HasPrefix(line, "SIP/2.0 ") {
		t.Fatalf("answer: %q %v", line, err)
	}
	for range 6 {
		time.Sleep(200 * time.Millisecond)
		if _, err := io.WriteString(k, "\r\n\r\n"); err != nil {
			t.Fatalf("a connection sending keep-alives was cut: %v", err)
		}
	}
	if !closedWithin(k, 3*time.Second) {
		t.Fatal("an idle connection was kept past the idle timeout")
	}
}

func TestConnLimitsCaps(t *testing.T) {
	s := startSIPServer(t, Config{ConnLimits: ConnLimits{MaxPerAddress: 3, MaxConns: 5}})
	for i := range 3 {
		if _, err := s.rawTLS(t, s.addr, "127.0.0.2"); err != nil {
			t.Fatalf("connection %d from one address: %v", i, err)
		}
	}
	if c, err := s.rawTLS(t, s.addr, "127.0.0.2"); err == nil && !closedWithin(c, 2*time.Second) {
		t.Fatal("a connection over the per-address cap was kept")
	}
	for i := range 2 {
		if _, err := s.rawTLS(t, s.addr, "127.0.0.3"); err != nil {
			t.Fatalf("connection %d from another address: %v", i, err)
		}
	}
	if c, err := s.rawTLS(t, s.addr, "127.0.0.4"); err == nil && !closedWithin(c, 2*time.Second) {
		t.Fatal("a connection over the total cap was kept")
	}
}

func TestConnLimitsMessageSize(t *testing.T) {
	s := startSIPServer(t, Config{ConnLimits: ConnLimits{MaxMessageSize: 4096}})
	c, err := s.rawTLS(t, s.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Replace(optionsMsg, "Content-Length: 0", "Content-Length: 60000", 1)
	if _, err := io.WriteString(c, big); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 2*time.Second) {
		t.Fatal("a message declaring a body over the size limit was kept waiting for it")
	}
}

// wsUpgrade opens SIP over secure WebSocket with the given Origin (""
// for none) and returns the connection and the status of the answer.
func (s *sipServer) wsUpgrade(t *testing.T, origin string) (*tls.Conn, int) {
	t.Helper()
	c, err := s.rawTLS(t, s.wss, "")
	if err != nil {
		t.Fatal(err)
	}
	req := "GET / HTTP/1.1\r\nHost: " + s.wss + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, 0
	}
	return c, res.StatusCode
}

func TestWebSocketLimits(t *testing.T) {
	s := startSIPServer(t, Config{ConnLimits: ConnLimits{MaxMessageSize: 4096, Origins: []string{"https://web.example.test"}}})
	// A client that connects and says nothing does not hold up others
	// (sipgo reads upgrade requests in its accept loop).
	if _, err := s.rawTLS(t, s.wss, ""); err != nil {
		t.Fatal(err)
	}
	if _, code := s.wsUpgrade(t, "https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("SIP over WebSocket from a foreign page: %d, want 403", code)
	}
	if _, code := s.wsUpgrade(t, "https://web.example.test"); code != http.StatusSwitchingProtocols {
		t.Fatalf("SIP over WebSocket from the allowed origin: %d, want 101", code)
	}
	c, code := s.wsUpgrade(t, "")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("SIP over WebSocket without Origin: %d, want 101", code)
	}
	// A masked text frame declaring 60,000 bytes, over the 4,096 allowed:
	// refused at its header, without waiting for the payload.
	hdr := []byte{0x81, 0x80 | 126, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint16(hdr[2:4], 60000)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 2*time.Second) {
		t.Fatal("a frame over the size limit was not refused at its header")
	}
	// And one declaring 2^62 bytes.
	c, _ = s.wsUpgrade(t, "")
	hdr = []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint64(hdr[2:10], 1<<62)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 2*time.Second) {
		t.Fatal("a frame declaring 2^62 bytes was not refused")
	}
}

func TestConnLimitsValidated(t *testing.T) {
	for _, lim := range []ConnLimits{{HandshakeTimeout: -1}, {MessageTimeout: -1}, {IdleTimeout: -1}, {MaxPerAddress: -1},
		{MaxConns: -1}, {MaxMessageSize: -1}, {Origins: []string{"web.example.test"}}} {
		if _, err := New(Config{Directory: NewMemoryDirectory(), Realm: "example.test", ConnLimits: lim}); err == nil {
			t.Fatalf("ConnLimits %+v accepted", lim)
		}
		if _, err := LimitListener(nil, lim); err == nil || !strings.Contains(err.Error(), "ConnLimits.") {
			t.Fatalf("LimitListener with %+v: %v", lim, err)
		}
	}
}

// pipeListener accepts one end of a net.Pipe, which buffers nothing: a
// write waits for the other end to read.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.conns) })
	return nil
}
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// A peer that stops reading cannot hold a writer: a write waits at most
// the message timeout, then the connection closes.
func TestConnLimitsWriteTimeout(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	pl := &pipeListener{conns: make(chan net.Conn, 1)}
	pl.conns <- server
	ln, err := LimitListener(pl, ConnLimits{MessageTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, 1<<16))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a write nobody read succeeded")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a write to a peer that does not read was not cut")
	}
}

// TestWebSocketLimitFollowsSipgosReadBuffer: with the default
// MaxMessageSize (65,535), a frame larger than the buffer sipgo reads a
// WebSocket message into (sip.TransportBufferReadSize, 32 KiB by default)
// is refused at its header, not cut by sipgo and failed as a parse.
func TestWebSocketLimitFollowsSipgosReadBuffer(t *testing.T) {
	s := startSIPServer(t, Config{})
	c, code := s.wsUpgrade(t, "")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	hdr := []byte{0x81, 0x80 | 126, 0, 0, 1, 2, 3, 4}
	binary.BigEndian.PutUint16(hdr[2:4], uint16(sip.TransportBufferReadSize)+1)
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 2*time.Second) {
		t.Fatalf("a frame of %d bytes, over sipgo's read buffer, was not refused at its header", sip.TransportBufferReadSize+1)
	}
}
