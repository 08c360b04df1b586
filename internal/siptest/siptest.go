// Package siptest reads and answers SIP over a stream connection, for the
// tests and benchmarks that drive a server with raw messages instead of a
// user agent.
package siptest

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// ReadMessage reads one SIP message from r, its body framed by its
// Content-Length, and returns it whole.
func ReadMessage(r *bufio.Reader) ([]byte, error) {
	var msg bytes.Buffer
	length := 0
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		msg.Write(line)
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(bytes.TrimSpace(k)), "Content-Length") {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if _, err := io.CopyN(&msg, r, int64(length)); err != nil {
		return nil, err
	}
	return msg.Bytes(), nil
}

// AnswerNotifies reads what a server sends on a connection (r) until the
// connection fails: NOTIFYs are answered 200 on w and counted in
// answered, anything else (the responses to one's SUBSCRIBEs) dropped.
func AnswerNotifies(r *bufio.Reader, w io.Writer, answered *atomic.Int64) {
	for {
		raw, err := ReadMessage(r)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(raw, []byte("NOTIFY ")) {
			continue
		}
		msg, err := sip.ParseMessage(raw)
		if err != nil {
			continue
		}
		res := sip.NewResponseFromRequest(msg.(*sip.Request), 200, "OK", nil)
		if _, err := w.Write([]byte(res.String())); err != nil {
			return
		}
		answered.Add(1)
	}
}
