package auth

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
)

// LimitWebSocketFrames wraps the ResponseWriter of a WebSocket upgrade so
// that the connection a WebSocket library hijacks from it closes as soon
// as the header of a client frame declaring more than maxPayload bytes
// arrives, instead of waiting for the payload (github.com/coder/websocket
// applies its read limit only as the payload is read). Pass it to the
// library's Accept in place of w.
func LimitWebSocketFrames(w http.ResponseWriter, maxPayload int) http.ResponseWriter {
	return &frameLimitWriter{ResponseWriter: w, max: uint64(max(maxPayload, 0))}
}

type frameLimitWriter struct {
	http.ResponseWriter
	max uint64
}

// Hijack hands over the connection, its reads followed frame by frame.
// (No Unwrap: a library must not reach the unlimited connection.)
func (w *frameLimitWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	fc := &frameConn{Conn: c, fr: &wsFramer{max: w.max, upgraded: true}, pending: bytes.Clone(buffered)}
	return fc, bufio.NewReadWriter(bufio.NewReader(fc), brw.Writer), nil
}

// frameConn follows the frames read from a WebSocket's client.
type frameConn struct {
	net.Conn
	fr      *wsFramer
	pending []byte // what the HTTP server had read ahead
}

func (c *frameConn) Read(b []byte) (int, error) {
	var n int
	var err error
	if len(c.pending) > 0 {
		n = copy(b, c.pending)
		c.pending = c.pending[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	if n > 0 {
		if _, ferr := c.fr.feed(b[:n]); ferr != nil {
			_ = c.Conn.Close()
			return 0, ferr
		}
	}
	return n, err
}
