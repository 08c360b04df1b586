package main

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parleyuc/parley/pki"
)

// TestMalformedSIPLogsAreBounded: a flood of malformed SIP over TLS, each
// message 16 KB, does not flood the log: what is logged of it is at WARN,
// cut short, and rate-limited.
func TestMalformedSIPLogsAreBounded(t *testing.T) {
	s := startServer(t, t.TempDir())
	const sent = 150
	junk := "NOT-SIP " + strings.Repeat("x", 16<<10) + " SIP/2.0\r\nVia: nowhere\r\n\r\n"
	cfg := pki.ClientTLSConfig(nil, s.verifier(t), "localhost")
	for i := range sent {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.listeners["sip-tls"], cfg)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, junk)
		_, _ = io.Copy(io.Discard, c) // the server closes a connection it cannot parse
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	var lines, bytes int
	for line := range strings.Lines(s.logs.String()) {
		if !strings.Contains(line, "NOT-SIP") && !strings.Contains(line, "failed to parse") {
			continue
		}
		lines++
		bytes += len(line)
		if strings.Contains(line, "level=ERROR") {
			t.Fatalf("bad input logged as an error: %.300s", line)
		}
		if len(line) > 2048 {
			t.Fatalf("a log line of %d bytes: %.300s", len(line), line)
		}
	}
	if lines == 0 {
		t.Fatal("the malformed messages were not logged at all")
	}
	if lines >= sent {
		t.Fatalf("%d malformed messages gave %d log lines (%d bytes): not rate-limited", sent, lines, bytes)
	}
	t.Logf("%d malformed messages: %d log lines, %d bytes", sent, lines, bytes)
}
