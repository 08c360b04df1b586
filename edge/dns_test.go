package edge

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
)

// fakeDNS answers A queries for the names it knows, so that the two
// deployments of the federation test are dialed by name (TLS verifies
// names; it sends none for an address) while living on 127.0.0.2 and
// 127.0.0.3.
type fakeDNS struct {
	mu    sync.Mutex
	names map[string]net.IP // lower-case, without the final dot
	addr  string
}

// add makes name resolve to ip.
func (d *fakeDNS) add(name string, ip net.IP) {
	d.mu.Lock()
	d.names[strings.ToLower(name)] = ip
	d.mu.Unlock()
}

func startFakeDNS(t *testing.T, names map[string]net.IP) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{names: names, addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if res := d.answer(buf[:n]); res != nil {
				_, _ = pc.WriteTo(res, from)
			}
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return d
}

// answer builds the response to one query: the question echoed and, for
// an A query of a known name, its address (NXDOMAIN for unknown names,
// no answer for other types).
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels up to the root, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	question := q[12 : i+5]
	d.mu.Lock()
	ip, known := d.names[strings.ToLower(strings.Join(labels, "."))]
	d.mu.Unlock()
	res := make([]byte, 12, 64)
	copy(res, q[:2])                      // ID
	res[2], res[3] = 0x84|q[2]&0x01, 0x80 // response, authoritative, RD copied, RA
	binary.BigEndian.PutUint16(res[4:], 1)
	res = append(res, question...)
	switch {
	case !known:
		res[3] |= 3 // NXDOMAIN
	case qtype == 1 && ip.To4() != nil:
		binary.BigEndian.PutUint16(res[6:], 1)
		res = append(res, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		res = append(res, ip.To4()...)
	}
	return res
}

// resolver returns a net.Resolver that asks only this server.
func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", d.addr)
	}}
}
