package edge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v2"
)

// Defaults applied to zero RelayConfig fields.
const (
	DefaultRelayPortMin           = 50000
	DefaultRelayPortMax           = 59999
	DefaultAllocationsPerUser     = 10
	DefaultAllocationBandwidth    = 1_000_000 // bytes per second each way: 8 Mbit/s
	maxTURNFrame                  = 1 << 16
	relayInboundMTU               = 1600
	allocationRetriesBeforeGiveUp = 20
)

// RelayConfig configures an EdgeRelay. Realm, RelayAddress, at least one
// listener, and Secrets or AuthHandler are required; NewEdgeRelay applies
// the documented defaults to the other zero fields.
type RelayConfig struct {
	// Realm is the TURN realm.
	Realm string
	// Secrets verifies the credentials RelayCredentials issued (TURN REST
	// API user names, at most MaxCredentialLifetime long): the default
	// credential check.
	Secrets *Secrets
	// AuthHandler, if set, replaces the Secrets check with the
	// application's own: it returns the long-term key of a user name in
	// the realm (LongTermKey of the user's password), asked by a client at
	// src, or false to refuse it (the client gets 401 with a fresh
	// nonce). It is called for every authenticated request, concurrently,
	// and must not block. The relay's other rules hold whatever it
	// accepts: the peer filter, the quota per user (the user being the
	// user name's part after its last two colons, the whole name if it has
	// none), the binding of an allocation to its user name and the
	// bandwidth limit.
	AuthHandler func(username, realm string, src net.Addr) (key []byte, ok bool)
	// UDP are the packet listeners (e.g. 0.0.0.0:3478); TCP the stream
	// listeners, plain or wrapped with tls.NewListener for TURN over TLS.
	UDP []net.PacketConn
	TCP []net.Listener
	// RelayAddress is the address relayed transport addresses carry (the
	// edge's public address); RelayBind the local address relay sockets
	// bind (default RelayAddress).
	RelayAddress net.IP
	RelayBind    string
	// PortMin and PortMax bound relay ports, chosen at random (defaults
	// 50000-59999). Only allocated ports listen.
	PortMin, PortMax uint16
	// AllocationsPerUser bounds one user's allocations (default 10);
	// Bandwidth one allocation's relayed bytes per second each way (default
	// 1,000,000); packets beyond it are dropped.
	AllocationsPerUser, Bandwidth int
	// AllowPeers are peer ranges allowed although the default filter
	// refuses them (loopback, private, CGN, link-local, documentation,
	// multicast, reserved and unspecified ranges, and their embedded-IPv4
	// forms), e.g. the subnet of internal media servers, or loopback in
	// tests. It never opens the relay host's own addresses (every
	// interface's, read again every few seconds, and the configured
	// relay and listener addresses) except loopback ones.
	AllowPeers []netip.Prefix
	Logger     *slog.Logger
}

// RelayMetrics are the relay's counters.
type RelayMetrics struct {
	Allocations      int64 // active
	AllocationsTotal int64
	Permissions      int64 // granted (CreatePermission and ChannelBind)
	PeersRefused     int64 // permissions refused by the peer filter
	AuthFailures     int64 // bad, expired or unknown credentials; messages failing the integrity check (dropped)
	Replays          int64 // Allocates replayed from another 5-tuple (dropped)
	QuotaRefusals    int64 // Allocate refused: the user's quota is reached
	WrongCredentials int64 // requests on an allocation with another user's credentials
	BytesToPeers     int64
	BytesFromPeers   int64
	PacketsOverLimit int64 // dropped by the bandwidth limit
	TCPConnections   int64 // open connections with peers of TCP allocations (RFC 6062)
}

// EdgeRelay is the A/V Edge: a TURN relay (RFC 8656, on pion/turn/v2)
// for clients that cannot reach a meeting's media directly.
//
// # Building one
//
// NewEdgeRelay takes a RelayConfig: the realm, the listeners it serves
// (UDP packet conns; TCP listeners, plain or tls.NewListener for TURN over
// TLS), the public RelayAddress relayed addresses carry, and how
// credentials are checked. By default that is Secrets: the relay serves
// holders of the TURN REST API credentials RelayCredentials issues to
// signed-in users, at most MaxCredentialLifetime (8 hours) long. An
// application with its own accounts sets AuthHandler instead and returns
// LongTermKey(username, realm, password) for the users it accepts (see
// the example). Missing or inconsistent fields are refused with an error
// naming them; zero values get the defaults documented on RelayConfig.
//
// # What it enforces
//
// The first Allocate is answered 401 with a nonce; every later request
// carries the user name and an HMAC and is checked: a refused credential
// gets 401 with a fresh nonce, a stale nonce 438, a failed integrity
// check is dropped. Relay ports are random in the configured range and
// only allocated ports listen. Peers in private, loopback, link-local,
// documentation and other internal or reserved ranges (in their
// embedded-IPv4 IPv6 forms too) are refused unless RelayConfig.AllowPeers
// opens them, and the host's own addresses (every interface's) always:
// CreatePermission, ChannelBind and Connect toward them get 403. Each
// user has an allocation quota (486 beyond it) and each allocation a
// bandwidth limit; requests on an allocation must come with the
// credentials of the user who made it (441 otherwise). Clients on TCP or
// TLS listeners may ask for TCP relays (RFC 6062: Connect,
// ConnectionBind, ConnectionAttempt), under the same rules. Metrics
// counts all of it.
//
// # Lifecycle
//
// The relay serves from NewEdgeRelay on; Shutdown drains it (no new
// allocations, the open ones until they end or ctx does), Close stops it
// at once. It is safe for concurrent use.
type EdgeRelay struct {
	cfg    RelayConfig
	server *turn.Server
	filter peerFilter
	m      struct {
		allocations, allocationsTotal, permissions, peersRefused, authFailures,
		quota, wrongCredentials, toPeers, fromPeers, overLimit, replays, tcpConns atomic.Int64
	}
	tcp *tcpRelays // RFC 6062 allocations

	mu       sync.Mutex
	perUser  map[string]int            // the user's allocations, those being made included
	owner    map[string]string         // allocation 5-tuple -> user name that made it
	relays   map[string]*relayConn     // client address -> its allocation's relay socket
	all      map[*relayConn]struct{}   // every open relay socket
	seen     map[[12]byte]seenAllocate // Allocate transaction IDs, against replay
	seenLog  []seenEntry               // the same, oldest first, to expire them
	streams  []*streamGuard
	closed   bool
	draining bool // Shutdown: no new allocations
}

// seenAllocate is where an authenticated Allocate came from first.
type seenAllocate struct {
	tuple string
	at    time.Time
}

type seenEntry struct {
	id [12]byte
	at time.Time
}

// Replay protection keeps Allocate transaction IDs as long as a nonce
// lives (pion's: an hour), at most maxSeenAllocates of them.
const (
	seenAllocateTTL  = time.Hour
	maxSeenAllocates = 1 << 18
)

// NewEdgeRelay starts a relay on the configured listeners, or returns an
// error naming the invalid field.
func NewEdgeRelay(cfg RelayConfig) (*EdgeRelay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = DefaultRelayPortMin, DefaultRelayPortMax
	}
	if cfg.RelayBind == "" {
		cfg.RelayBind = cfg.RelayAddress.String()
	}
	if cfg.AllocationsPerUser == 0 {
		cfg.AllocationsPerUser = DefaultAllocationsPerUser
	}
	if cfg.Bandwidth == 0 {
		cfg.Bandwidth = DefaultAllocationBandwidth
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &EdgeRelay{cfg: cfg, perUser: map[string]int{}, owner: map[string]string{}, relays: map[string]*relayConn{},
		all:  map[*relayConn]struct{}{},
		seen: map[[12]byte]seenAllocate{}}
	r.tcp = newTCPRelays(r)
	r.filter.allow = cfg.AllowPeers
	host, err := newHostAddrs(cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("edge: reading the host's addresses for the peer filter: %w", err)
	}
	r.filter.host = host
	if a, ok := netip.AddrFromSlice(cfg.RelayAddress); ok {
		r.filter.own = append(r.filter.own, a.Unmap())
	}
	sc := turn.ServerConfig{Realm: cfg.Realm, AuthHandler: r.authenticate, LoggerFactory: quietLoggers(), InboundMTU: relayInboundMTU,
		ChannelBindTimeout: relayChannelLifetime}
	for _, pc := range cfg.UDP {
		r.addOwn(pc.LocalAddr())
		g := newPacketGuard(pc, r)
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{PacketConn: g,
			RelayAddressGenerator: &portGenerator{r: r, current: g.allocating}, PermissionHandler: r.permit})
	}
	for _, ln := range cfg.TCP {
		r.addOwn(ln.Addr())
		g := &streamGuard{Listener: ln, r: r, conns: map[*guardedConn]struct{}{}}
		r.streams = append(r.streams, g)
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: g,
			RelayAddressGenerator: &portGenerator{r: r, current: g.allocating}, PermissionHandler: r.permit})
	}
	s, err := turn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	r.server = s
	return r, nil
}

// validate returns an error naming the first field of c that is missing
// or inconsistent.
func (c *RelayConfig) validate() error {
	switch {
	case c.Realm == "":
		return errors.New("edge: RelayConfig.Realm is required")
	case c.Secrets == nil && c.AuthHandler == nil:
		return errors.New("edge: RelayConfig.Secrets (or AuthHandler) is required")
	case c.RelayAddress == nil:
		return errors.New("edge: RelayConfig.RelayAddress is required")
	case len(c.RelayAddress) != net.IPv4len && len(c.RelayAddress) != net.IPv6len:
		return fmt.Errorf("edge: RelayConfig.RelayAddress %v is not an IP address", c.RelayAddress)
	case len(c.UDP)+len(c.TCP) == 0:
		return errors.New("edge: RelayConfig.UDP or RelayConfig.TCP needs a listener")
	case c.RelayBind != "" && net.ParseIP(c.RelayBind) == nil:
		return fmt.Errorf("edge: RelayConfig.RelayBind %q is not an IP address", c.RelayBind)
	case c.PortMin == 0 && c.PortMax != 0, c.PortMax < c.PortMin:
		return fmt.Errorf("edge: RelayConfig.PortMin/PortMax: invalid range %d-%d", c.PortMin, c.PortMax)
	case c.AllocationsPerUser < 0:
		return errors.New("edge: RelayConfig.AllocationsPerUser must not be negative")
	case c.Bandwidth < 0:
		return errors.New("edge: RelayConfig.Bandwidth must not be negative")
	}
	for i, pc := range c.UDP {
		if pc == nil {
			return fmt.Errorf("edge: RelayConfig.UDP[%d] is nil", i)
		}
	}
	for i, ln := range c.TCP {
		if ln == nil {
			return fmt.Errorf("edge: RelayConfig.TCP[%d] is nil", i)
		}
	}
	for i, p := range c.AllowPeers {
		if !p.IsValid() {
			return fmt.Errorf("edge: RelayConfig.AllowPeers[%d] is not a valid prefix", i)
		}
	}
	return nil
}

func (r *EdgeRelay) addOwn(a net.Addr) {
	var ip net.IP
	switch x := a.(type) {
	case *net.UDPAddr:
		ip = x.IP
	case *net.TCPAddr:
		ip = x.IP
	}
	if p, ok := netip.AddrFromSlice(ip); ok && !p.IsUnspecified() {
		r.filter.own = append(r.filter.own, p.Unmap())
	}
}

// Close stops the relay at once: listeners, connections and every
// allocation (Shutdown lets allocations finish first).
func (r *EdgeRelay) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	err := r.server.Close()
	for _, g := range r.streams {
		g.closeAll()
	}
	r.tcp.close()
	// pion closes its allocations when its read loops end; a loop blocked
	// writing to a client that does not read would keep its socket open.
	r.mu.Lock()
	open := make([]*relayConn, 0, len(r.all))
	for rc := range r.all {
		open = append(open, rc)
	}
	r.mu.Unlock()
	for _, rc := range open {
		_ = rc.Close()
	}
	return err
}

// shutdownPoll is how often Shutdown looks whether the allocations have
// ended.
const shutdownPoll = 20 * time.Millisecond

// Shutdown drains the relay, as http.Server.Shutdown drains a server: new
// Allocates are answered 508 (Insufficient Capacity), TCP connections
// that carry no allocation are closed, and the open allocations are given
// until ctx ends to finish (their clients delete them at the end of their
// calls, with a Refresh of lifetime 0, or they expire, or their TCP
// connections close). Then, or when none is left, the relay closes as
// Close does: what remains of allocations and connections is closed.
// Shutdown returns nil when the allocations ended by themselves, and
// ctx.Err() when ctx ended first.
func (r *EdgeRelay) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	for _, g := range r.streams {
		g.closeIdle()
	}
	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	for r.m.allocations.Load() > 0 {
		select {
		case <-ctx.Done():
			_ = r.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	// The last allocation ended when pion deleted it, before it wrote the
	// answer to the client's Refresh: give that answer time to go out.
	select {
	case <-ctx.Done():
	case <-time.After(shutdownGrace):
	}
	return r.Close()
}

// shutdownGrace is how long Shutdown waits, once the last allocation has
// ended, before it closes the listeners: the answer to the Refresh that
// deleted it is written after the deletion.
const shutdownGrace = 250 * time.Millisecond

// Metrics returns the relay's counters.
func (r *EdgeRelay) Metrics() RelayMetrics {
	return RelayMetrics{
		Allocations: r.m.allocations.Load(), AllocationsTotal: r.m.allocationsTotal.Load(),
		Permissions: r.m.permissions.Load(), PeersRefused: r.m.peersRefused.Load(), AuthFailures: r.m.authFailures.Load(),
		QuotaRefusals: r.m.quota.Load(), WrongCredentials: r.m.wrongCredentials.Load(),
		BytesToPeers: r.m.toPeers.Load(), BytesFromPeers: r.m.fromPeers.Load(), PacketsOverLimit: r.m.overLimit.Load(),
		Replays: r.m.replays.Load(), TCPConnections: r.m.tcpConns.Load(),
	}
}

// permit is pion's PermissionHandler: the peer filter.
func (r *EdgeRelay) permit(client net.Addr, peer net.IP) bool {
	if !r.filter.permits(peer) {
		r.m.peersRefused.Add(1)
		r.cfg.Logger.Info("relay peer refused", "client", client.String(), "peer", peer.String())
		return false
	}
	r.m.permissions.Add(1)
	r.mu.Lock()
	if rc := r.relays[clientKey(client)]; rc != nil {
		rc.permit(peer)
	}
	r.mu.Unlock()
	return true
}

// clientKey names a client by transport and address, as pion gives it to
// the permission handler.
func clientKey(a net.Addr) string {
	if _, ok := a.(*net.UDPAddr); ok {
		return "udp|" + a.String()
	}
	return "tcp|" + a.String()
}

// userOf returns the user a credential's user name names.
func userOf(username string) string {
	parts := strings.SplitN(username, ":", 3)
	return parts[len(parts)-1]
}

// allocating is the Allocate request being handled on a listener: who
// asks, from which 5-tuple. pion calls the port generator while handling
// it, on the goroutine that read it.
type allocating struct {
	tuple, client, user string
	used                bool // the allocation was made (guarded by EdgeRelay.mu)

	// A UDP Allocate's listener and client address, for the fast path
	// (guard nil: a TCP one, or a listener that is no *net.UDPConn).
	guard *packetGuard
	src   netip.AddrPort
}

// settle releases the quota an Allocate reserved if pion made no
// allocation of it. The guards call it once pion is done with the request.
func (r *EdgeRelay) settle(a *allocating) {
	if a == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !a.used {
		a.used = true
		if r.perUser[userOf(a.user)]--; r.perUser[userOf(a.user)] <= 0 {
			delete(r.perUser, userOf(a.user))
		}
	}
}

// portGenerator is pion's RelayAddressGenerator for one listener: a UDP
// socket on a random port in the range, bound to the allocation's user.
type portGenerator struct {
	r       *EdgeRelay
	current func() *allocating
}

// Validate implements turn.RelayAddressGenerator.
func (g *portGenerator) Validate() error { return nil }

// AllocatePacketConn implements turn.RelayAddressGenerator.
func (g *portGenerator) AllocatePacketConn(network string, requested int) (net.PacketConn, net.Addr, error) {
	a := g.current()
	if a == nil {
		return nil, nil, errors.New("edge: allocation without an Allocate request")
	}

	cfg := g.r.cfg
	// pion/turn/v2 always asks for "udp4"; a relay bound to an IPv6
	// address relays over IPv6 (one bound to "::", over both).
	if ip, err := netip.ParseAddr(cfg.RelayBind); err == nil && network == "udp4" && !ip.Unmap().Is4() {
		network = "udp6"
		if ip.IsUnspecified() {
			network = "udp"
		}
	}
	for try := 0; try < allocationRetriesBeforeGiveUp; try++ {
		port := requested
		if port == 0 {
			port = g.r.randomPort()
		} else if port < int(cfg.PortMin) || port > int(cfg.PortMax) {
			return nil, nil, fmt.Errorf("edge: port %d outside the relay range", port)
		}
		pc, err := net.ListenPacket(network, net.JoinHostPort(cfg.RelayBind, strconv.Itoa(port)))
		if err != nil {
			if requested != 0 {
				return nil, nil, err
			}
			continue
		}
		addr := &net.UDPAddr{IP: cfg.RelayAddress, Port: pc.LocalAddr().(*net.UDPAddr).Port}
		rc, err := g.r.track(pc, a)
		if err != nil {
			return nil, nil, err
		}
		return rc, addr, nil
	}
	return nil, nil, errors.New("edge: no free relay port")
}

// AllocateConn implements turn.RelayAddressGenerator. pion/turn/v2 never
// calls it: the relay serves TCP allocations itself (tcpRelays).
func (g *portGenerator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("edge: TCP relay allocations are served by tcpRelays")
}

// randomPort returns a port of the relay range, chosen at random.
func (r *EdgeRelay) randomPort() int {
	var b [4]byte
	_, _ = rand.Read(b[:])
	span := uint32(r.cfg.PortMax) - uint32(r.cfg.PortMin) + 1
	return int(r.cfg.PortMin) + int(binary.BigEndian.Uint32(b[:])%span)
}

// track claims an allocation for a relay socket pion asked for.
func (r *EdgeRelay) track(pc net.PacketConn, a *allocating) (net.PacketConn, error) {
	rc := &relayConn{PacketConn: pc, r: r, a: a, out: newBucket(r.cfg.Bandwidth), in: newBucket(r.cfg.Bandwidth),
		peers: map[netip.Addr]bool{}}
	rc.udp, _ = pc.(*net.UDPConn)
	if err := r.claim(a); err != nil {
		_ = pc.Close()
		return nil, err
	}
	if a.guard != nil && a.guard.udp != nil && rc.udp != nil {
		rc.fast = newFastAlloc(a.guard, rc, a.src)
		a.guard.fmu.Lock()
		a.guard.fast[a.src] = rc.fast
		a.guard.fmu.Unlock()
	}
	r.mu.Lock()
	if d, ok := r.credentialLeft(a.user); ok { // set under r.mu, which Close takes before reading it
		rc.ends = time.AfterFunc(d, func() { _ = rc.Close() })
	}
	r.relays[a.client] = rc
	r.all[rc] = struct{}{}
	r.mu.Unlock()
	return rc, nil
}

// claim counts an allocation against its user and binds its 5-tuple to
// the user name, until unclaim.
func (r *EdgeRelay) claim(a *allocating) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("edge: the relay is closed")
	}
	if a.used { // settled already: count it again
		r.perUser[userOf(a.user)]++
	}
	a.used = true
	r.owner[a.tuple] = a.user
	r.m.allocations.Add(1)
	r.m.allocationsTotal.Add(1)
	return nil
}

// unclaim ends what claim began: the allocation is gone.
func (r *EdgeRelay) unclaim(a *allocating) {
	user := userOf(a.user)
	r.mu.Lock()
	if r.perUser[user]--; r.perUser[user] <= 0 {
		delete(r.perUser, user)
	}
	delete(r.owner, a.tuple)
	r.mu.Unlock()
	r.m.allocations.Add(-1)
}

// closeClient closes the relay socket of the allocation a client made
// over a connection that has closed (pion/turn/v2 keeps it otherwise
// until its lifetime ends, and with it the user's quota).
func (r *EdgeRelay) closeClient(client string) {
	r.mu.Lock()
	rc := r.relays[client]
	r.mu.Unlock()
	if rc != nil {
		_ = rc.Close()
	}
}

// relayConn is an allocation's relay socket: it counts bytes, applies the
// bandwidth limit, and releases the quota when pion closes it.
type relayConn struct {
	net.PacketConn
	r       *EdgeRelay
	a       *allocating
	in, out *bucket
	addrs   addrCache // used by pion's reading goroutine only
	once    sync.Once
	buf     []byte       // ReadFrom's: a ChannelData header, pion's buffer and one byte more, padding
	udp     *net.UDPConn // the PacketConn if it is one
	fast    *fastAlloc   // the fast path's copy of the allocation's grants; nil: none (TCP client, not a UDPConn)

	// Batching, once the fast path has relayed a datagram from a peer
	// (idle allocations keep no batch buffers): rb reads the relay
	// socket (datagrams qi to qn are still to be handled) and cw writes
	// ChannelData to the client, both used by pion's reading goroutine
	// only; wb writes datagrams from the client, used by the listener's.
	rb     *udpReader
	qi, qn int
	cw, wb *udpWriter
	ends   *time.Timer // at the credential's expiry; nil: none known

	pmu   sync.Mutex
	peers map[netip.Addr]bool // peers with a permission (kept until the allocation ends)
}

func (c *relayConn) permit(ip net.IP) {
	if a, ok := netip.AddrFromSlice(ip); ok {
		c.pmu.Lock()
		c.peers[a.Unmap()] = true
		c.pmu.Unlock()
	}
}

func (c *relayConn) permitted(addr net.Addr) bool {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	a, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return false
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.peers[a.Unmap()]
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.out.take(len(p)) {
		c.r.m.overLimit.Add(1)
		return len(p), nil // dropped, as a congested network would
	}
	c.r.m.toPeers.Add(int64(len(p)))
	return c.PacketConn.WriteTo(p, addr)
}

// Close releases the allocation's quota and socket, once: later calls
// return nil (pion's allocation manager stops closing the others at the
// first error, and the relay closes a TCP client's socket itself).
func (c *relayConn) Close() error {
	var err error
	c.once.Do(func() {
		r := c.r
		r.mu.Lock()
		if c.ends != nil {
			c.ends.Stop()
		}
		if r.relays[c.a.client] == c {
			delete(r.relays, c.a.client)
		}
		if fa := c.fast; fa != nil {
			fa.g.fmu.Lock()
			if fa.g.fast[fa.client] == fa {
				delete(fa.g.fast, fa.client)
			}
			fa.g.fmu.Unlock()
		}
		delete(r.all, c)
		r.mu.Unlock()
		r.unclaim(c.a)
		err = c.PacketConn.Close()
	})
	return err
}

// bucket is a token bucket of bytes per second, with one second of burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate int) *bucket {
	return &bucket{rate: float64(rate), tokens: float64(rate), last: time.Now()}
}

// reserve takes n bytes, into debt if need be, and returns how long the
// caller must wait for the debt to be paid (streams wait, datagrams are
// dropped instead: take).
func (b *bucket) reserve(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

func (b *bucket) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// quietLoggers keeps pion's own logging off; the relay logs through slog.
func quietLoggers() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}
