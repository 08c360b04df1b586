package presence

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/siptest"
	"github.com/parleyuc/parley/pki"
)

// rawConn is a minimal SIP-over-TLS load generator: one connection, one
// request at a time, responses read by Content-Length.
type rawConn struct {
	conn *tls.Conn
	r    *bufio.Reader
}

func dialRaw(b testing.TB, e *env) *rawConn {
	conn, err := tls.Dial("tcp", e.addr, pki.ClientTLSConfig(nil, e.verifier, "sip.example.test"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &rawConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10)}
}

// roundTrip writes msg and returns the status code of the next response.
func (c *rawConn) roundTrip(msg []byte) (int, string, error) {
	if _, err := c.conn.Write(msg); err != nil {
		return 0, "", err
	}
	return c.readResponse()
}

func (c *rawConn) readResponse() (int, string, error) {
	msg, err := siptest.ReadMessage(c.r)
	if err != nil {
		return 0, "", err
	}
	status := 0
	if bytes.HasPrefix(msg, []byte("SIP/2.0 ")) && len(msg) >= 11 {
		status, _ = strconv.Atoi(string(msg[8:11]))
	}
	return status, string(msg), nil
}

func registerMsg(user, callID string, cseq int, authz string) []byte {
	return []byte("REGISTER sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK" + callID + strconv.Itoa(cseq) + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:" + user + "@example.test>;tag=" + callID + "\r\n" +
		"To: <sip:" + user + "@example.test>\r\nCall-ID: " + callID + "\r\nCSeq: " + strconv.Itoa(cseq) + " REGISTER\r\n" +
		"Contact: <sip:" + user + "-" + callID + "@127.0.0.1;transport=tls>\r\nExpires: 600\r\n" + authz +
		"Content-Length: 0\r\n\r\n")
}

// signIn registers user on c with Digest, leaving a security association.
func signIn(b testing.TB, c *rawConn, user, callID string) {
	code, head, err := c.roundTrip(registerMsg(user, callID, 1, ""))
	if err != nil || code != 401 {
		b.Fatalf("first REGISTER: %d %v", code, err)
	}
	i := strings.Index(head, `nonce="`)
	nonce := head[i+7 : i+7+strings.IndexByte(head[i+7:], '"')]
	ha1 := ha1sha256(user, passwords[user])
	resp := hexSHA256(ha1 + ":" + nonce + ":00000001:c0ffee:auth:" + hexSHA256("REGISTER:sip:example.test"))
	authz := fmt.Sprintf("Authorization: Digest username=\"%s\", realm=\"example.test\", nonce=\"%s\", uri=\"sip:example.test\", response=\"%s\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n", user, nonce, resp)
	if code, _, err := c.roundTrip(registerMsg(user, callID, 2, authz)); err != nil || code != 200 {
		b.Fatalf("REGISTER with Digest: %d %v", code, err)
	}
}

// benchUser adds a user to the directory for one load connection.
func benchUser(b *testing.B, e *env, i int) string {
	name := "load" + strconv.Itoa(i)
	passwords[name] = "pw-" + name
	u := auth.User{URI: "sip:" + name + "@example.test", Enabled: true,
		Credentials: auth.Credentials{HA1SHA256: ha1sha256(name, passwords[name])}}
	if err := e.directory.PutUser(u); err != nil {
		b.Fatal(err)
	}
	return name
}

// BenchmarkRegisterRefresh: authenticated REGISTER refreshes over
// persistent TLS connections, each with a security association, from 64
// connections in parallel; the load generator runs in the same process.
func BenchmarkRegisterRefresh(b *testing.B) {
	e := newEnv(b)
	const conns = 64
	clients := make([]*rawConn, conns)
	users := make([]string, conns)
	for i := range clients {
		users[i] = benchUser(b, e, i)
		clients[i] = dialRaw(b, e)
		signIn(b, clients[i], users[i], "bench"+strconv.Itoa(i))
	}
	var next, cseq atomic.Int64
	cseq.Store(10)
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(conns / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % conns
		c, user := clients[i], users[i]
		callID := "bench" + strconv.Itoa(i)
		n := 10
		for pb.Next() {
			n++
			if code, _, err := c.roundTrip(registerMsg(user, callID, n, "")); err != nil || code != 200 {
				b.Errorf("refresh: %d %v", code, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registers/s")
}

// BenchmarkPublishFanOut: one PUBLISH reaching 10,000 watchers, whose
// subscriptions arrived over 100 TLS connections (as through edges or
// front ends); time from the PUBLISH until the last NOTIFY was answered.
func BenchmarkPublishFanOut(b *testing.B) {
	const watchers, conns = 10000, 100
	e := newEnv(b)
	alice := e.phone("alice")
	alice.register(600)

	var answered atomic.Int64
	var wg sync.WaitGroup
	for i := range conns {
		c := dialRaw(b, e)
		user := benchUser(b, e, i)
		// Watchers are alice's contacts: strangers would hit the spim limit.
		_ = e.policy.SetContact(context.Background(), alice.aor(), "sip:"+user+"@example.test", Colleague)
		signIn(b, c, user, "fan"+strconv.Itoa(i))
		n := watchers / conns
		// Subscribe n times on this connection, then answer NOTIFYs.
		for j := range n {
			callID := fmt.Sprintf("sub-%d-%d", i, j)
			msg := "SUBSCRIBE sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK" + callID + "\r\n" +
				"Max-Forwards: 70\r\nFrom: <sip:" + user + "@example.test>;tag=" + callID + "\r\nTo: <sip:alice@example.test>\r\n" +
				"Call-ID: " + callID + "\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:" + user + "@127.0.0.1;transport=tls>\r\n" +
				"Event: presence\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
			if _, err := c.conn.Write([]byte(msg)); err != nil {
				b.Fatal(err)
			}
		}
		wg.Go(func() { siptest.AnswerNotifies(c.r, c.conn, &answered) })
	}
	deadline := time.Now().Add(60 * time.Second)
	for e.presence.Subscriptions() < watchers || answered.Load() < watchers {
		if time.Now().After(deadline) {
			b.Fatalf("%d subscriptions, %d initial NOTIFYs answered", e.presence.Subscriptions(), answered.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := answered.Load() + watchers
		state := []Availability{Busy, Available}[i%2]
		alice.publishState(state, "")
		for answered.Load() < target {
			time.Sleep(200 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(watchers)*float64(b.N)/b.Elapsed().Seconds(), "notifies/s")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/fan-out")
}

// BenchmarkMemoryPerBinding: heap bytes per registered binding in the
// in-memory location store.
func BenchmarkMemoryPerBinding(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		store := NewMemoryLocation()
		now := time.Now()
		for i := range n {
			aor := "sip:user" + strconv.Itoa(i) + "@example.test"
			_ = store.Update(context.Background(), aor, []Binding{{
				AOR: aor, Contact: "sip:user" + strconv.Itoa(i) + "@192.0.2.1:50123;transport=tls", CallID: "4f1b2a3c-callid-" + strconv.Itoa(i),
				CSeq: 7, Expires: now.Add(time.Hour), Transport: "TLS", Source: "192.0.2.1:50123", UserAgent: "baresip v1.0.0 (x86_64/linux)",
			}}, nil, false)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/binding")
		runtime.KeepAlive(store)
	}
}

// BenchmarkMemoryPerSubscription: heap bytes per presence subscription
// held by the PresenceServer.
func BenchmarkMemoryPerSubscription(b *testing.B) {
	const n = 100_000
	e := newEnv(b)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := e.presence
		s.mu.Lock()
		for i := range n {
			var target sip.Uri
			_ = sip.ParseUri("sip:bob@192.0.2.1:50123;transport=tls", &target)
			watcher := &auth.Identity{URI: "sip:bob@example.test", DisplayName: "Bob", Kind: auth.Internal, Tenant: "example.test", Method: auth.MethodDigest}
			sub := &subscription{presentity: "sip:alice@example.test", watcher: watcher, target: target,
				callID: "4f1b2a3c-callid-" + strconv.Itoa(i), remoteTag: "a1b2c3d4", localTag: newTag(),
				transport: "TLS", source: "192.0.2.1:50123", expires: time.Now().Add(time.Hour)}
			sub.id = dialogID(sub.callID, sub.remoteTag, sub.localTag)
			s.subs[sub.id] = sub
			if s.byPres[sub.presentity] == nil {
				s.byPres[sub.presentity] = map[string]*subscription{}
			}
			s.byPres[sub.presentity][sub.id] = sub
		}
		s.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/subscription")
		s.mu.Lock()
		s.subs, s.byPres = map[string]*subscription{}, map[string]map[string]*subscription{}
		s.mu.Unlock()
	}
}
