package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// SIP over secure WebSocket (RFC 7118), as a browser's SIP client
// speaks it: each message one text frame.

// wssOptions sends an OPTIONS whose body is size bytes of SDP over a new
// SIP WebSocket connection and returns the first line of the answer, or
// the read's error.
func wssOptions(t *testing.T, s *server, size int) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+s.listeners["sip-wss"], &websocket.DialOptions{
		HTTPClient: s.httpsClient(t), Subprotocols: []string{"sip"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	var body strings.Builder
	body.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n")
	for i := 0; body.Len() < size; i++ {
		fmt.Fprintf(&body, "a=x-line:%06d %s\r\n", i, strings.Repeat("x", 60))
	}
	sdp := body.String()[:size]
	msg := "OPTIONS sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK" + fmt.Sprint(size) + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=wss1\r\nTo: <sip:example.test>\r\n" +
		"Call-ID: wss-" + fmt.Sprint(size) + "\r\nCSeq: 1 OPTIONS\r\nContent-Type: application/sdp\r\n" +
		"Content-Length: " + fmt.Sprint(len(sdp)) + "\r\n\r\n" + sdp
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, answer, err := ws.Read(ctx)
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(string(answer), "\r\n")
	return first, nil
}

// TestSIPOverWebSocketTakesBrowserSizedMessages: a message the size of
// a browser's INVITE with simulcast video (10 KB of SDP) is answered; one
// over the read buffer is refused by closing the connection, and the
// listener still answers the next client.
func TestSIPOverWebSocketTakesBrowserSizedMessages(t *testing.T) {
	s := startServer(t, t.TempDir())
	for _, size := range []int{500, 10 << 10} {
		first, err := wssOptions(t, s, size)
		if err != nil || !strings.HasPrefix(first, "SIP/2.0 ") {
			t.Fatalf("OPTIONS with %d bytes of SDP: %q (%v), want an answer", size, first, err)
		}
	}
	if first, err := wssOptions(t, s, 40<<10); err == nil {
		t.Fatalf("OPTIONS with 40 KB of SDP, over the read buffer: answered %q", first)
	}
	if first, err := wssOptions(t, s, 500); err != nil || !strings.HasPrefix(first, "SIP/2.0 ") {
		t.Fatalf("OPTIONS after a refused message: %q (%v)", first, err)
	}
}
