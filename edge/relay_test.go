package edge

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

type relayEnv struct {
	t       *testing.T
	relay   *EdgeRelay
	secrets *Secrets
	udp     string // the relay's UDP listener
	tcp     string // its TCP listener
	clock   *fakeClock
	rto     time.Duration // the clients' retransmission timeout
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newRelay(t *testing.T, opts ...func(*RelayConfig)) *relayEnv {
	t.Helper()
	c := &fakeClock{t: time.Now()}
	secrets := NewSecrets(0, c.now)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := RelayConfig{Realm: "example.test", Secrets: secrets, UDP: []net.PacketConn{udp}, TCP: []net.Listener{tcp},
		RelayAddress: net.IPv4(127, 0, 0, 1)}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := NewEdgeRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &relayEnv{t: t, relay: r, secrets: secrets, udp: udp.LocalAddr().String(), tcp: tcp.Addr().String(), clock: c,
		rto: 200 * time.Millisecond}
}

// client is pion's TURN client over UDP with cred.
func (e *relayEnv) client(cred Credential) *turn.Client {
	e.t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	return e.clientOn(conn, e.udp, cred)
}

func (e *relayEnv) clientOn(conn net.PacketConn, server string, cred Credential) *turn.Client {
	e.t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: server, Conn: conn, Username: cred.Username,
		Password: cred.Password, Realm: "example.test", LoggerFactory: quietLoggers(), RTO: e.rto})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

// allocate makes an allocation, closed when the test ends.
func allocate(t *testing.T, c *turn.Client) (net.PacketConn, error) {
	t.Helper()
	rc, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { _ = rc.Close() })
	}
	return rc, err
}

func TestRelayAllocatesWithIssuedCredentials(t *testing.T) {
	e := newRelay(t)
	ports := map[int]bool{}
	for i := range 5 {
		relayConn, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour)))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		defer relayConn.Close()
		port := relayConn.LocalAddr().(*net.UDPAddr).Port
		if port < DefaultRelayPortMin || port > DefaultRelayPortMax {
			t.Fatalf("relay port %d outside %d-%d", port, DefaultRelayPortMin, DefaultRelayPortMax)
		}
		ports[port] = true
	}
	if len(ports) < 4 {
		t.Errorf("relay ports %v: want them to vary", ports)
	}
	if m := e.relay.Metrics(); m.Allocations != 5 || m.AllocationsTotal != 5 {
		t.Errorf("metrics %+v", m)
	}
}

func TestRelayRefusesBadCredentials(t *testing.T) {
	e := newRelay(t)
	good := e.secrets.Issue("alice@example.test", time.Hour)

	// A wrong password fails the integrity check: the relay drops the
	// request unanswered, so the client gives up after its retransmissions.
	wrong := good
	wrong.Password = "not-the-password"
	e.rto = 20 * time.Millisecond
	if _, err := allocate(t, e.client(wrong)); err == nil {
		t.Error("wrong password: allocated")
	}
	e.rto = 200 * time.Millisecond
	// Another relay's secret.
	other := NewSecrets(0, nil).Issue("alice@example.test", time.Hour)
	if _, err := allocate(t, e.client(other)); err == nil {
		t.Error("credential of another secret: allocated")
	}
	// A credential that claims 24 hours, correctly signed: refused.
	long := strconv.FormatInt(e.clock.now().Add(24*time.Hour).Unix(), 10) + ":" + e.secrets.current.id + ":alice@example.test"
	if _, err := allocate(t, e.client(Credential{Username: long, Password: password(e.secrets.current.key, long)})); err == nil {
		t.Error("24-hour credential: allocated")
	}
	// Expired.
	e.clock.advance(time.Hour)
	if _, err := allocate(t, e.client(good)); err == nil {
		t.Error("expired credential: allocated")
	}
	if m := e.relay.Metrics(); m.AuthFailures < 4 || m.Allocations != 0 {
		t.Errorf("metrics %+v", m)
	}
}

func TestCredentialLifetimeCappedAtEightHours(t *testing.T) {
	s := NewSecrets(0, nil)
	c := s.Issue("alice@example.test", 24*time.Hour)
	if c.TTL != int(MaxCredentialLifetime/time.Second) || time.Until(c.Expires) > MaxCredentialLifetime {
		t.Fatalf("credential asking for 24 h: TTL %d s, expires %v", c.TTL, c.Expires)
	}
	if pass, user, err := s.Password(c.Username); err != nil || pass != c.Password || user != "alice@example.test" {
		t.Fatalf("Password: %q %q %v", pass, user, err)
	}
}

func TestSecretRotation(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := NewSecrets(time.Hour, clock.now)
	before := s.Issue("alice@example.test", 8*time.Hour)
	s.Rotate()
	if _, _, err := s.Password(before.Username); err != nil {
		t.Fatalf("credential of the previous secret within the grace period: %v", err)
	}
	after := s.Issue("alice@example.test", 8*time.Hour)
	if after.Username == before.Username {
		t.Fatal("same user name after rotation")
	}
	clock.advance(time.Hour)
	if _, _, err := s.Password(before.Username); !errors.Is(err, ErrCredentialInvalid) {
		t.Fatalf("previous secret after the grace period: %v", err)
	}
	if _, _, err := s.Password(after.Username); err != nil {
		t.Fatalf("current secret: %v", err)
	}
	// The plain REST form "<expiry>:<user>" is checked with the current
	// secret.
	plain := strconv.FormatInt(clock.now().Add(time.Hour).Unix(), 10) + ":carol@example.test"
	if pass, user, err := s.Password(plain); err != nil || pass != password(s.current.key, plain) || user != "carol@example.test" {
		t.Fatalf("plain REST user name: %q %q %v", pass, user, err)
	}
}

// TestRelayRefusesInternalPeers: by default a permission toward loopback
// or a private range is refused.
func TestRelayRefusesInternalPeers(t *testing.T) {
	e := newRelay(t)
	relayConn, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer relayConn.Close()
	for _, peer := range []string{"127.0.0.1:9", "10.1.2.3:9", "192.168.1.1:9", "169.254.169.254:80", "[::ffff:127.0.0.1]:9"} {
		addr, _ := net.ResolveUDPAddr("udp", peer)
		if _, err := relayConn.WriteTo([]byte("hello"), addr); err == nil {
			t.Errorf("relaying to %s: permitted", peer)
		}
	}
	if m := e.relay.Metrics(); m.PeersRefused < 4 || m.BytesToPeers != 0 {
		t.Errorf("metrics %+v", m)
	}
}

// echoPeer is a UDP peer on loopback that answers every datagram.
func echoPeer(t *testing.T) (net.Addr, <-chan []byte) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- append([]byte(nil), buf[:n]...)
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr(), got
}

func TestRelayCarriesDataToAnAllowedPeer(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	peer, got := echoPeer(t)
	for name, client := range map[string]func() *turn.Client{
		"udp": func() *turn.Client { return e.client(e.secrets.Issue("alice@example.test", time.Hour)) },
		"tcp": func() *turn.Client {
			conn, err := net.Dial("tcp4", e.tcp)
			if err != nil {
				t.Fatal(err)
			}
			return e.clientOn(turn.NewSTUNConn(conn), e.tcp, e.secrets.Issue("bob@example.test", time.Hour))
		},
	} {
		relayConn, err := allocate(t, client())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := relayConn.WriteTo([]byte("hello "+name), peer); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		select {
		case b := <-got:
			if string(b) != "hello "+name {
				t.Fatalf("%s: peer got %q", name, b)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing reached the peer", name)
		}
		buf := make([]byte, 100)
		_ = relayConn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := relayConn.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "hello "+name || from.String() != peer.String() {
			t.Fatalf("%s: echo %q from %v: %v", name, buf[:n], from, err)
		}
		_ = relayConn.Close()
	}
	if m := e.relay.Metrics(); m.BytesToPeers == 0 || m.BytesFromPeers == 0 || m.Permissions < 2 {
		t.Errorf("metrics %+v", m)
	}
}

func TestRelayQuotaPerUser(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) { c.AllocationsPerUser = 2 })
	var conns []net.PacketConn
	for range 2 {
		rc, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, rc)
	}
	if _, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour))); err == nil {
		t.Fatal("third allocation of a user with a quota of 2")
	}
	if _, err := allocate(t, e.client(e.secrets.Issue("bob@example.test", time.Hour))); err != nil {
		t.Fatalf("another user: %v", err)
	}
	if m := e.relay.Metrics(); m.QuotaRefusals != 1 {
		t.Errorf("metrics %+v", m)
	}
	// Releasing one frees the quota.
	_ = conns[0].Close()
	waitUntil(t, func() bool { return e.relay.Metrics().Allocations == 2 })
	if _, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour))); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}

func TestRelayBandwidthLimit(t *testing.T) {
	e := newRelay(t, func(c *RelayConfig) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Bandwidth = 3000
	})
	peer, got := echoPeer(t)
	relayConn, err := allocate(t, e.client(e.secrets.Issue("alice@example.test", time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	for range 20 {
		if _, err := relayConn.WriteTo(payload, peer); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(got); n < 1 || n > 5 {
		t.Errorf("%d KB reached the peer within a 3 KB/s limit", n)
	}
	if m := e.relay.Metrics(); m.PacketsOverLimit < 10 {
		t.Errorf("metrics %+v", m)
	}

	// The other way: a peer (with a permission now) floods the relay
	// address; the client gets what the limit lets through.
	flood, err := net.DialUDP("udp4", nil, relayConn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	time.Sleep(1100 * time.Millisecond) // the bucket refills: 3 KB
	// The echoes of the first packets may still arrive: drain them.
	for drained := false; !drained; {
		_ = relayConn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := relayConn.ReadFrom(make([]byte, 1500)); err != nil {
			drained = true
		}
	}
	// The flood's port is new, but a permission is per peer IP.
	for range 20 {
		_, _ = flood.Write(payload)
	}
	received := 0
	for {
		_ = relayConn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := relayConn.ReadFrom(make([]byte, 1500)); err != nil {
			break
		}
		received++
	}
	if received < 1 || received > 5 {
		t.Errorf("%d KB from the peer reached the client within a 3 KB/s limit", received)
	}
}

// TestRelayBindsAnAllocationToItsUser: a request on alice's allocation
// (same 5-tuple) with bob's valid credentials gets 441.
func TestRelayBindsAnAllocationToItsUser(t *testing.T) {
	e := newRelay(t)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server, _ := net.ResolveUDPAddr("udp4", e.udp)
	ask := func(method stun.Method, cred *Credential, nonce string, extra ...stun.Setter) *stun.Message {
		t.Helper()
		setters := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
		setters = append(setters, extra...)
		if cred != nil {
			setters = append(setters, stun.NewUsername(cred.Username), stun.NewRealm("example.test"), stun.NewNonce(nonce),
				stun.NewLongTermIntegrity(cred.Username, "example.test", cred.Password))
		}
		setters = append(setters, stun.Fingerprint)
		m := stun.MustBuild(setters...)
		if _, err := conn.WriteTo(m.Raw, server); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		res := &stun.Message{Raw: buf[:n]}
		if err := res.Decode(); err != nil {
			t.Fatal(err)
		}
		return res
	}
	udpTransport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	challenge := ask(stun.MethodAllocate, nil, "", udpTransport)
	var nonce stun.Nonce
	if err := nonce.GetFrom(challenge); err != nil {
		t.Fatalf("first Allocate: no nonce in %v", challenge)
	}
	alice, bob := e.secrets.Issue("alice@example.test", time.Hour), e.secrets.Issue("bob@example.test", time.Hour)
	if res := ask(stun.MethodAllocate, &alice, nonce.String(), udpTransport); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("alice's Allocate: %v", res)
	}
	res := ask(stun.MethodRefresh, &bob, nonce.String())
	var code stun.ErrorCodeAttribute
	if err := code.GetFrom(res); err != nil || code.Code != stun.CodeWrongCredentials {
		t.Fatalf("bob's Refresh of alice's allocation: %v (%v)", res, code)
	}
	if res := ask(stun.MethodRefresh, &alice, nonce.String()); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("alice's Refresh: %v", res)
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not reached in 5 s")
}

// two rotations within the grace period break credentials early.
func TestSecretsSurviveRepeatedRotation(t *testing.T) {
	s := NewSecrets(0, nil)
	c := s.Issue("alice@example.test", time.Hour)
	s.Rotate()
	s.Rotate()
	if _, _, err := s.Password(c.Username); err != nil {
		t.Errorf("credential issued before two rotations in the grace period: %v", err)
	}
}
