package presence

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"hash"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

func TestMain(m *testing.M) {
	// sipgo logs through slog's default logger, which go test mixes into
	// the benchmark output; keep errors only.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	goleak.VerifyTestMain(m)
}

var passwords = map[string]string{"alice": "alice-secret-1", "bob": "bob-secret-2", "carol": "carol-secret-3"}

// env is a Parley SIP server over TLS on loopback: CA, directory,
// Authenticator, Registrar and Router, as examples/server assembles them.
type env struct {
	t         testing.TB
	addr      string // SIP over TLS (and plain SIP over UDP)
	wssAddr   string // SIP over secure WebSocket
	verifier  *pki.Verifier
	directory *auth.MemoryDirectory
	registrar *Registrar
	policy    *PresencePolicy
	presence  *PresenceServer
	clock     *clock
}

type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// newEnv starts the server; opts adjust its Router's configuration.
func newEnv(t testing.TB, opts ...func(*RouterConfig)) *env {
	t.Helper()
	p := testpki.New(t)
	v := p.Verifier
	kp := p.Server(t, "sip.example.test")

	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	for _, name := range []string{"alice", "bob", "carol"} {
		// Digest needs only the HA1 values; the PBKDF2 hash SetPassword
		// adds would cost seconds per test under the race detector.
		u := auth.User{URI: "sip:" + name + "@example.test", DisplayName: name, Enabled: true,
			Credentials: auth.Credentials{HA1SHA256: ha1(sha256.New(), name, passwords[name]), HA1MD5: ha1(md5.New(), name, passwords[name])}}
		if err := dir.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	c := &clock{}
	th, _ := auth.NewThrottle(auth.ThrottleConfig{PerAddress: auth.Limit{Rate: 1e6, Burst: 1e6}, PerSubnet: auth.Limit{Rate: 1e6, Burst: 1e6}})
	authn, err := auth.New(auth.Config{Directory: dir, Realm: "example.test", Throttle: th, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authn.Close() })
	reg, err := NewRegistrar(RegistrarConfig{Auth: authn, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("parley-test"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wssLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := NewPresencePolicy(PresencePolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	spim, _ := auth.NewThrottle(auth.ThrottleConfig{Now: c.now}) // one budget per sender, for messages and subscriptions
	rcfg := RouterConfig{Auth: authn, Directory: dir, Locator: reg, Client: client, Policy: policy, Spim: spim,
		Connections: ua.TransportLayer(), Timeout: 3 * time.Second,
		Listeners: map[string]string{"TLS": ln.Addr().String(), "WSS": wssLn.Addr().String()}}
	for _, o := range opts {
		o(&rcfg)
	}
	router, err := NewRouter(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := NewPresenceServer(PresenceServerConfig{Auth: authn, Directory: dir, Policy: policy, Registrar: reg, Client: client, Spim: spim,
		Connections: ua.TransportLayer(), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(reg.HandleRegister)
	srv.OnMessage(router.HandleMessage)
	srv.OnInvite(router.HandleInvite)
	for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE, sip.INFO, sip.UPDATE, sip.PRACK, sip.REFER, sip.NOTIFY} {
		srv.OnRequest(m, router.HandleInDialog)
	}
	srv.OnPublish(ps.HandlePublish)
	srv.OnSubscribe(SubscribeHandler(ps.HandleSubscribe, router.HandleSubscribe))

	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeTLS(authn.Listener(tls.NewListener(ln, pki.ServerTLSConfig(kp, v))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeWSS(authn.WSSListener(tls.NewListener(wssLn, pki.ServerTLSConfig(kp, v))))
	}()
	t.Cleanup(func() {
		_ = ps.Close()
		_ = ln.Close()
		_ = wssLn.Close()
		_ = client.Close()
		_ = ua.Close()
		<-done
		<-done
	})
	return &env{t: t, addr: ln.Addr().String(), wssAddr: wssLn.Addr().String(), verifier: v, directory: dir,
		registrar: reg, policy: policy, presence: ps, clock: c}
}

// phone is a SIP client built with sipgo, as a device: one TLS connection
// to the server, on which it registers, sends and receives.
type phone struct {
	t         testing.TB
	env       *env
	user      string
	contact   string // unique per phone, as a device's own address would be
	transport string // TLS, or WSS for a browser-like client
	ua        *sipgo.UserAgent
	client    *sipgo.Client
	srv       *sipgo.Server

	inbox    chan *sip.Request
	notifies chan *sip.Request
	calls    *calls // when the phone takes part in calls (enableCalls)
}

func (e *env) phone(user string) *phone {
	e.t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("phone-"+user),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(nil, e.verifier, "sip.example.test")))
	if err != nil {
		e.t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	p := &phone{t: e.t, env: e, user: user, ua: ua, client: client, srv: srv, inbox: make(chan *sip.Request, 256), notifies: make(chan *sip.Request, 64),
		contact: "<sip:" + user + "-" + sip.GenerateTagN(6) + "@127.0.0.1;transport=tls>", transport: "TLS"}
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		p.inbox <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		p.notifies <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	e.t.Cleanup(p.hangUp)
	return p
}

// hangUp closes the phone's connection.
func (p *phone) hangUp() {
	_ = p.client.Close()
	_ = p.ua.Close()
}

func (p *phone) aor() string { return "sip:" + p.user + "@example.test" }

// request builds a request from the phone to target, sent to the server.
func (p *phone) request(method sip.RequestMethod, target string, headers ...sip.Header) *sip.Request {
	var uri sip.Uri
	if err := sip.ParseUri(target, &uri); err != nil {
		p.t.Fatal(err)
	}
	req := sip.NewRequest(method, uri)
	var from sip.Uri
	_ = sip.ParseUri(p.aor(), &from)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{Address: from, Params: params})
	req.AppendHeader(sip.NewHeader("User-Agent", "phone-"+p.user))
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetTransport(p.transport)
	if p.transport == "WSS" {
		req.SetDestination(p.env.wssAddr)
	} else {
		req.SetDestination(p.env.addr)
	}
	return req
}

// overWSS makes the phone speak SIP over secure WebSocket, as a browser.
func (p *phone) overWSS() *phone {
	p.transport = "WSS"
	p.contact = strings.Replace(p.contact, "transport=tls", "transport=ws", 1)
	return p
}

// do sends req and answers a Digest challenge with the user's password
// (sipgo's own Digest client).
func (p *phone) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.client.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.user, Password: passwords[p.user]})
	}
	if err != nil {
		p.t.Fatalf("%s %s: %v", req.Method, req.Recipient.String(), err)
	}
	return res
}

// register registers the phone's connection for expires seconds (-1: no
// Expires header).
func (p *phone) register(expires int, extra ...sip.Header) *sip.Response {
	p.t.Helper()
	var to sip.Uri
	_ = sip.ParseUri(p.aor(), &to)
	h := []sip.Header{&sip.ToHeader{Address: to}, sip.NewHeader("Contact", p.contact)}
	if expires >= 0 {
		h = append(h, sip.NewHeader("Expires", strconv.Itoa(expires)))
	}
	return p.do(p.request(sip.REGISTER, "sip:example.test", append(h, extra...)...))
}

func (p *phone) message(to, text string) *sip.Response {
	p.t.Helper()
	req := p.request(sip.MESSAGE, to, sip.NewHeader("Content-Type", "text/plain"))
	var toURI sip.Uri
	_ = sip.ParseUri(to, &toURI)
	req.AppendHeader(&sip.ToHeader{Address: toURI})
	req.SetBody([]byte(text))
	return p.do(req)
}

// received waits for a MESSAGE on the phone.
func (p *phone) received(t *testing.T) *sip.Request {
	t.Helper()
	select {
	case m := <-p.inbox:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s received no MESSAGE", p.user)
		return nil
	}
}

func sipHeader(name, value string) sip.Header { return sip.NewHeader(name, value) }

// ha1 is RFC 7616's H(username:realm:password) for the example.test realm.
func ha1(h hash.Hash, user, password string) string {
	h.Write([]byte(user + ":example.test:" + password))
	return hex.EncodeToString(h.Sum(nil))
}

func ha1sha256(user, password string) string { return ha1(sha256.New(), user, password) }

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func randHex(n int) string { return sip.GenerateTagN(n) }
