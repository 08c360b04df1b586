package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test users of the example.test tenant.
const (
	alicePassword = "correct horse battery staple"
	bobPassword   = "Tr0ub4dor&3"
	meetingA      = "m-aaaa"
	keyA          = "key-for-meeting-a-8c1f2e"
	meetingB      = "m-bbbb"
	keyB          = "key-for-meeting-b-77d0aa"
)

// testDirectory holds the example.test tenant with alice, bob and a
// disabled carol. Passwords are hashed with few PBKDF2 iterations to keep
// the tests fast; Digest uses only the HA1 values.
func testDirectory(t testing.TB) *MemoryDirectory {
	t.Helper()
	d := NewMemoryDirectory()
	if err := d.PutTenant(Tenant{Domain: "example.test", Name: "Example"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		uri, name, pw string
		enabled       bool
	}{
		{"sip:alice@example.test", "Alice", alicePassword, true},
		{"sip:bob@example.test", "Bob", bobPassword, true},
		{"sip:carol@example.test", "Carol", "carol-pw", false},
	} {
		user := User{URI: u.uri, DisplayName: u.name, Tenant: "example.test", Enabled: u.enabled, MeetingLicense: true}
		user.Credentials = Credentials{
			HA1SHA256: digestHA1(algSHA256, user.Username(), "example.test", u.pw),
			HA1MD5:    digestHA1(algMD5, user.Username(), "example.test", u.pw),
		}
		var err error
		if user.Credentials.PBKDF2, err = hashPassword(u.pw, 1000); err != nil {
			t.Fatal(err)
		}
		if err := d.PutUser(user); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// meetings is a ConferenceKeys for tests.
type meetings map[string]string

func (m meetings) ConferenceKey(_ context.Context, id string) (string, error) {
	k, ok := m[id]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownMeeting, id)
	}
	return k, nil
}

// sipServer is a sipgo server over TLS whose handlers require
// authentication and record who they served.
type sipServer struct {
	pki   *testpki.PKI
	authn *Authenticator
	dir   *MemoryDirectory // the directory, when the test did not bring its own
	addr  string           // TLS on TCP, and plain SIP on UDP, at the same port
	wss   string           // SIP over secure WebSocket

	mu     sync.Mutex
	served []*Identity
}

func startSIPServer(t testing.TB, cfg Config) *sipServer {
	t.Helper()
	p := testpki.New(t)
	var dir *MemoryDirectory
	if cfg.Directory == nil {
		dir = testDirectory(t)
		cfg.Directory = dir
	}
	if cfg.Realm == "" {
		cfg.Realm = "example.test"
	}
	if len(cfg.Edges)+len(cfg.Peers) > 0 && cfg.EdgeCA == nil {
		cfg.EdgeCA = p.CA.Certificate()
	}
	authn, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authn.Close() })
	s := &sipServer{pki: p, authn: authn, dir: dir}
	kp := p.Server(t, "sip.example.test")

	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	ok := authn.Require(func(id *Identity, req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		s.served = append(s.served, id)
		s.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	for _, m := range []sip.RequestMethod{sip.OPTIONS, sip.REGISTER, sip.MESSAGE, sip.INVITE, sip.SUBSCRIBE, sip.INFO, sip.PUBLISH} {
		srv.OnRequest(m, ok)
	}
	// TLS and UDP on one port, as a SIP server has them: the port TCP got
	// may be another's on UDP (another package's test), so try again.
	var ln net.Listener
	var udp net.PacketConn
	for try := 0; ; try++ {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if udp, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		_ = ln.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	s.addr = ln.Addr().String()
	wssLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.wss = wssLn.Addr().String()
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeTLS(authn.Listener(tls.NewListener(ln, pki.ServerTLSConfig(kp, p.Verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeWSS(authn.WSSListener(tls.NewListener(wssLn, pki.ServerTLSConfig(kp, p.Verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeUDP(udp)
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = udp.Close()
		_ = wssLn.Close()
		_ = ua.Close()
		<-done
		<-done
		<-done
	})
	return s
}

func (s *sipServer) lastServed() *Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.served) == 0 {
		return nil
	}
	return s.served[len(s.served)-1]
}

// sipClient is one TLS connection to the server, speaking SIP by hand so a
// test controls every header, the source address and the connection.
type sipClient struct {
	t    testing.TB
	conn *tls.Conn
	r    *bufio.Reader
	cseq int
}

// dial opens a TLS connection from localIP (any 127.x.y.z; "" for the
// default), presenting cert if it is not nil.
func (s *sipServer) dial(t testing.TB, localIP string, cert *pki.KeyPair) *sipClient {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	raw, err := d.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, pki.ClientTLSConfig(cert, s.pki.Verifier, "sip.example.test"))
	if err := conn.Handshake(); err != nil {
		raw.Close()
		t.Fatal(err)
	}
	c := &sipClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// do sends a request and returns the final response.
func (c *sipClient) do(method, ruri, from string, headers ...string) *sip.Response {
	c.t.Helper()
	res, err := c.try(method, ruri, from, headers...)
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

func (c *sipClient) try(method, ruri, from string, headers ...string) (*sip.Response, error) {
	c.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK%s;rport\r\n", c.conn.LocalAddr(), randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: %s;tag=%s\r\nTo: <%s>\r\n", from, randHex(4), ruri)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d %s\r\n", randHex(8), c.cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:client@%s;transport=tls>\r\n", c.conn.LocalAddr())
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return nil, err
	}
	for {
		res, err := c.read()
		if err != nil || res.StatusCode >= 200 {
			return res, err
		}
	}
}

func (c *sipClient) read() (*sip.Response, error) {
	var head strings.Builder
	length := 0
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	msg, err := sip.ParseMessage(append([]byte(head.String()), body...))
	if err != nil {
		return nil, err
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		return nil, fmt.Errorf("got a request, not a response")
	}
	return res, nil
}

// challenge returns the challenge values of a 401/407, in order.
func challenges(res *sip.Response) []string {
	var out []string
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range res.GetHeaders(name) {
			out = append(out, h.Value())
		}
	}
	return out
}

// digestFor answers the first Digest challenge of res using algorithm alg.
func digestFor(t testing.TB, res *sip.Response, alg, method, uri, username, password string, nc int) string {
	t.Helper()
	for _, c := range challenges(res) {
		h, err := parseAuthHeader(c)
		if err != nil || !strings.EqualFold(h.Scheme, "Digest") || h.Params["algorithm"] != alg {
			continue
		}
		return digestCredentials(h.Params["realm"], h.Params["nonce"], alg, method, uri, username, password, nc)
	}
	t.Fatalf("no Digest %s challenge in %v", alg, challenges(res))
	return ""
}

func digestCredentials(realm, nonce, alg, method, uri, username, password string, nc int) string {
	user := strings.SplitN(username, "@", 2)[0]
	if strings.HasPrefix(username, AnonymousPrefix) {
		user = username
	}
	ha1 := digestHA1(alg, user, realm, password)
	ncs := fmt.Sprintf("%08x", nc)
	cnonce := randHex(8)
	resp := digestResponse(alg, ha1, nonce, ncs, cnonce, method, uri)
	return fmt.Sprintf(`Authorization: Digest username=%s, realm=%s, nonce=%s, uri=%s, response=%s, algorithm=%s, qop=auth, nc=%s, cnonce=%s`,
		quote(user), quote(realm), quote(nonce), quote(uri), quote(resp), alg, ncs, quote(cnonce))
}

// register signs alice (or another user) in with Digest on c.
func (c *sipClient) register(user, password string) *sip.Response {
	c.t.Helper()
	from := "<sip:" + user + "@example.test>"
	res := c.do("REGISTER", "sip:example.test", from)
	if res.StatusCode != 401 {
		c.t.Fatalf("REGISTER without credentials: %d, want 401", res.StatusCode)
	}
	return c.do("REGISTER", "sip:example.test", from, digestFor(c.t, res, algSHA256, "REGISTER", "sip:example.test", user, password, 1))
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
