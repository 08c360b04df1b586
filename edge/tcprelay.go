package edge

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun"
)

// TCP relay allocations (RFC 6062). pion/turn/v2 answers an Allocate
// asking for a TCP relay with a UDP one and knows neither Connect nor
// ConnectionBind, so the stream guard hands those to tcpRelays before
// pion sees them: an Allocate with REQUESTED-TRANSPORT TCP, every request
// on a connection that holds a TCP allocation, Connect and
// ConnectionBind. The same credentials, quota, peer filter and bandwidth
// limit apply as to UDP allocations. tcpRelays authenticates those
// requests itself with its own nonces (pion's are not visible to it);
// EdgeRelay.inspect has already dropped those whose integrity check
// failed.

// RFC 6062 and RFC 8656 timers.
const (
	tcpDefaultLifetime = 10 * time.Minute
	tcpMaxLifetime     = time.Hour
	tcpPermissionLife  = 5 * time.Minute
	tcpConnectTimeout  = 30 * time.Second // "MUST be at least 30 seconds"
	tcpBindTimeout     = 30 * time.Second
	tcpNonceLife       = time.Hour
	tcpMaxPeerConns    = 64   // peer data connections per allocation, pending or bound
	tcpMaxPermissions  = 1024 // peers with a permission per allocation
	tcpCopyChunk       = 32 << 10
	protoTCP           = 6 // REQUESTED-TRANSPORT
)

// STUN methods, attributes and codes of RFC 6062 that pion/stun v0.6
// does not name.
var (
	methodConnect           = stun.Method(0x000a)
	methodConnectionBind    = stun.Method(0x000b)
	methodConnectionAttempt = stun.Method(0x000c)
	codeConnAlreadyExists   = stun.ErrorCode(446)
	codeConnTimeoutFailure  = stun.ErrorCode(447)
)

// tcpRelays holds a relay's TCP allocations and their peer connections.
type tcpRelays struct {
	r        *EdgeRelay
	nonceKey [32]byte

	mu     sync.Mutex
	allocs map[*guardedConn]*tcpAllocation // by control connection
	conns  map[uint32]*peerStream          // by CONNECTION-ID
	ports  map[int]bool                    // relayed ports in use: SO_REUSEPORT would let two allocations share one
	closed bool
}

func newTCPRelays(r *EdgeRelay) *tcpRelays {
	t := &tcpRelays{r: r, allocs: map[*guardedConn]*tcpAllocation{}, conns: map[uint32]*peerStream{}, ports: map[int]bool{}}
	_, _ = rand.Read(t.nonceKey[:])
	return t
}

// tcpAllocation is one TCP allocation: a listener on the relayed
// transport address, the permissions, and the peer connections.
type tcpAllocation struct {
	t        *tcpRelays
	control  *guardedConn
	claim    *allocating // the quota and 5-tuple it holds
	relayed  *net.TCPAddr
	bindAddr *net.TCPAddr // the local address of the listener and of Connect's dials
	ln       net.Listener
	in, out  *bucket
	txID     [stun.TransactionIDSize]byte
	response []byte // the Allocate's success, for a retransmitted Allocate
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the accept loop and Connect's dials

	mu         sync.Mutex
	perms      map[netip.Addr]time.Time // peer -> permission expiry
	conns      map[uint32]*peerStream
	connecting map[netip.AddrPort]bool
	expiry     *time.Timer // the allocation's lifetime, reset by refreshes
	ends       *time.Timer // the credential's expiry; nil: none known
	closed     bool
}

// peerStream is a connection with a peer, pending until a client data
// connection binds it (ConnectionBind), then relayed byte for byte.
type peerStream struct {
	id     uint32
	a      *tcpAllocation
	conn   net.Conn
	peer   netip.AddrPort
	timer  *time.Timer  // closes a connection nobody binds
	bound  bool         // guarded by a.mu
	client *guardedConn // the client data connection, once bound (guarded by a.mu)
	once   sync.Once
}

// stunRequest is an authenticated request's credentials.
type stunRequest struct {
	username string
	key      stun.MessageIntegrity
}

// xorAddress is an XOR-encoded address attribute of type t
// (XOR-RELAYED-ADDRESS, XOR-PEER-ADDRESS).
type xorAddress struct {
	t    stun.AttrType
	addr netip.AddrPort
}

func (x xorAddress) AddTo(m *stun.Message) error {
	return stun.XORMappedAddress{IP: x.addr.Addr().AsSlice(), Port: int(x.addr.Port())}.AddToAs(m, x.t)
}

// intercept takes the frames that are the TCP relay's to answer, read
// from c: it reports whether it took the frame, and the peer connection c
// is now bound to if it became a client data connection. alloc is the
// Allocate that inspect counted against the user's quota, if any; a frame
// intercept does not take keeps it for pion.
func (t *tcpRelays) intercept(c *guardedConn, frame []byte, alloc *allocating) (taken bool, bound *peerStream) {
	if !stun.IsMessage(frame) {
		return false, nil
	}
	var mt stun.MessageType
	mt.ReadValue(binary.BigEndian.Uint16(frame[0:2]))
	t.mu.Lock()
	a := t.allocs[c]
	t.mu.Unlock()
	if a == nil && mt.Method != stun.MethodAllocate && mt.Method != methodConnect && mt.Method != methodConnectionBind {
		return false, nil
	}
	m := &stun.Message{Raw: append([]byte(nil), frame...)}
	if err := m.Decode(); err != nil {
		return false, nil
	}
	if mt.Method == stun.MethodAllocate && a == nil {
		if v, err := m.Get(stun.AttrRequestedTransport); err != nil || len(v) != 4 || v[0] != protoTCP {
			return false, nil // pion's: a UDP allocation
		}
		t.allocate(c, m, alloc)
		return true, nil
	}
	if m.Type.Class != stun.ClassRequest {
		return a != nil, nil // indications on a TCP allocation (Send) have no use
	}
	switch m.Type.Method {
	case stun.MethodAllocate:
		t.r.settle(alloc)
		if m.TransactionID == a.txID {
			_ = c.send(a.response)
		} else {
			t.reply(c, m, nil, stun.CodeAllocMismatch)
		}
	case stun.MethodRefresh:
		t.refresh(c, a, m)
	case stun.MethodCreatePermission:
		t.createPermission(c, a, m)
	case methodConnect:
		t.connect(c, a, m)
	case methodConnectionBind:
		return true, t.connectionBind(c, a, m)
	case stun.MethodChannelBind:
		// RFC 6062 section 5.2: no channels on a TCP allocation.
		if req, ok := t.authenticate(c, m); ok {
			t.reply(c, m, &req.key, stun.CodeBadRequest)
		}
	default:
		return false, nil // Binding and the like: pion's
	}
	return true, nil
}

// authenticate checks a request's long-term credentials (RFC 8489
// section 9.2.4) against this relay's nonces, answering 400, 401 or 438
// itself when they do not pass.
func (t *tcpRelays) authenticate(c *guardedConn, m *stun.Message) (stunRequest, bool) {
	if !m.Contains(stun.AttrMessageIntegrity) {
		t.challenge(c, m, stun.CodeUnauthorized)
		return stunRequest{}, false
	}
	var (
		u     stun.Username
		realm stun.Realm
		nonce stun.Nonce
	)
	if u.GetFrom(m) != nil || realm.GetFrom(m) != nil || nonce.GetFrom(m) != nil {
		t.reply(c, m, nil, stun.CodeBadRequest)
		return stunRequest{}, false
	}
	k, err := t.r.key(u.String(), realm.String(), c.RemoteAddr())
	if err != nil {
		t.r.m.authFailures.Add(1)
		t.r.cfg.Logger.Info("relay credential refused", "from", c.RemoteAddr().String(), "err", err)
		t.challenge(c, m, stun.CodeUnauthorized)
		return stunRequest{}, false
	}
	key := stun.MessageIntegrity(k)
	if key.Check(m) != nil {
		t.r.m.authFailures.Add(1)
		return stunRequest{}, false // dropped, as inspect does
	}
	if !t.validNonce(string(nonce), time.Now()) {
		t.challenge(c, m, stun.CodeStaleNonce)
		return stunRequest{}, false
	}
	return stunRequest{username: u.String(), key: key}, true
}

// challenge answers code (401 or 438) with the realm and a fresh nonce.
func (t *tcpRelays) challenge(c *guardedConn, m *stun.Message, code stun.ErrorCode) {
	res, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code}, stun.NewRealm(t.r.cfg.Realm), stun.NewNonce(t.nonce(time.Now())), stun.Fingerprint)
	if err == nil {
		_ = c.send(res.Raw)
	}
}

// nonce returns a nonce that validNonce accepts for tcpNonceLife: its
// time and an HMAC of it, so no nonce needs to be kept.
func (t *tcpRelays) nonce(now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 16)
	mac := hmac.New(sha256.New, t.nonceKey[:])
	mac.Write([]byte(ts))
	return ts + "." + hex.EncodeToString(mac.Sum(nil)[:16])
}

func (t *tcpRelays) validNonce(n string, now time.Time) bool {
	for i := 0; i < len(n); i++ {
		if n[i] != '.' {
			continue
		}
		issued, err := strconv.ParseInt(n[:i], 16, 64)
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, t.nonceKey[:])
		mac.Write([]byte(n[:i]))
		want := hex.EncodeToString(mac.Sum(nil)[:16])
		age := now.Sub(time.Unix(issued, 0))
		return hmac.Equal([]byte(n[i+1:]), []byte(want)) && age >= -time.Minute && age < tcpNonceLife
	}
	return false
}

// reply answers m with code, with MESSAGE-INTEGRITY when key is given
// (the request was authenticated).
func (t *tcpRelays) reply(c *guardedConn, m *stun.Message, key *stun.MessageIntegrity, code stun.ErrorCode) {
	setters := []stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code}}
	if key != nil {
		setters = append(setters, *key)
	}
	if res, err := stun.Build(append(setters, stun.Fingerprint)...); err == nil {
		_ = c.send(res.Raw)
	}
}

// succeed answers m with success and attrs, signed with key.
func succeed(c *guardedConn, m *stun.Message, key stun.MessageIntegrity, attrs ...stun.Setter) []byte {
	setters := append([]stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassSuccessResponse)},
		attrs...)
	res, err := stun.Build(append(setters, key, stun.Fingerprint)...)
	if err != nil {
		return nil
	}
	_ = c.send(res.Raw)
	return res.Raw
}

// lifetime is the lifetime a request asks for, at most tcpMaxLifetime,
// tcpDefaultLifetime if it asks for none.
func lifetime(m *stun.Message) time.Duration {
	v, err := m.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 {
		return tcpDefaultLifetime
	}
	d := time.Duration(binary.BigEndian.Uint32(v)) * time.Second
	return min(d, tcpMaxLifetime)
}

func lifetimeAttr(d time.Duration) stun.RawAttribute {
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(d/time.Second))
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: v}
}

// allocate serves an Allocate for a TCP relay (RFC 6062 section 5.1).
func (t *tcpRelays) allocate(c *guardedConn, m *stun.Message, claim *allocating) {
	req, ok := t.authenticate(c, m)
	if !ok {
		t.r.settle(claim)
		return
	}
	if claim == nil {
		// inspect reserves no quota for an Allocate on a 5-tuple that
		// has an allocation already: pion's UDP one.
		t.reply(c, m, &req.key, stun.CodeAllocMismatch)
		return
	}
	for _, attr := range []stun.AttrType{stun.AttrDontFragment, stun.AttrEvenPort, stun.AttrReservationToken} {
		if m.Contains(attr) {
			t.r.settle(claim)
			t.reply(c, m, &req.key, stun.CodeBadRequest)
			return
		}
	}
	ln, bind, err := t.listen()
	if err != nil {
		t.r.settle(claim)
		t.r.cfg.Logger.Warn("relay: no TCP relay address", "err", err)
		t.reply(c, m, &req.key, stun.CodeInsufficientCapacity)
		return
	}
	if err := t.r.claim(claim); err != nil {
		_ = ln.Close()
		t.releasePort(bind.Port)
		t.reply(c, m, &req.key, stun.CodeInsufficientCapacity)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &tcpAllocation{t: t, control: c, claim: claim, bindAddr: bind, ln: ln, txID: m.TransactionID,
		relayed: &net.TCPAddr{IP: t.r.cfg.RelayAddress, Port: bind.Port},
		in:      newBucket(t.r.cfg.Bandwidth), out: newBucket(t.r.cfg.Bandwidth), ctx: ctx, cancel: cancel,
		perms: map[netip.Addr]time.Time{}, conns: map[uint32]*peerStream{}, connecting: map[netip.AddrPort]bool{}}
	life := max(lifetime(m), tcpDefaultLifetime) // RFC 8656 section 7.2
	// The timers' close reads them under a.mu: set them under it.
	a.mu.Lock()
	a.expiry = time.AfterFunc(life, a.close)
	if d, ok := t.r.credentialLeft(claim.user); ok {
		a.ends = time.AfterFunc(d, a.close) // the credential's expiry, whatever refreshes it had
	}
	a.mu.Unlock()
	a.wg.Add(1)
	go a.acceptPeers()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		a.close()
		return
	}
	t.allocs[c] = a
	t.mu.Unlock()
	remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	a.response = succeed(c, m, req.key, xorAddress{stun.AttrXORRelayedAddress, a.relayed.AddrPort()},
		lifetimeAttr(life), xorAddress{stun.AttrXORMappedAddress, remote})
}

// listen opens the relayed transport address: a TCP listener on a random
// port of the range, which Connect's outgoing connections share.
func (t *tcpRelays) listen() (net.Listener, *net.TCPAddr, error) {
	cfg := t.r.cfg
	lc := net.ListenConfig{Control: reusePort}
	for try := 0; try < allocationRetriesBeforeGiveUp; try++ {
		port := t.r.randomPort()
		t.mu.Lock()
		taken := t.ports[port]
		t.ports[port] = true
		t.mu.Unlock()
		if taken {
			continue
		}
		ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(cfg.RelayBind, strconv.Itoa(port)))
		if err != nil {
			t.releasePort(port)
			continue
		}
		return ln, ln.Addr().(*net.TCPAddr), nil
	}
	return nil, nil, errors.New("edge: no free relay port")
}

func (t *tcpRelays) releasePort(port int) {
	t.mu.Lock()
	delete(t.ports, port)
	t.mu.Unlock()
}

// refresh serves Refresh on a TCP allocation; lifetime 0 deletes it.
func (t *tcpRelays) refresh(c *guardedConn, a *tcpAllocation, m *stun.Message) {
	req, ok := t.authenticate(c, m)
	if !ok {
		return
	}
	life := lifetime(m)
	if life == 0 {
		succeed(c, m, req.key, lifetimeAttr(0))
		a.close()
		return
	}
	life = max(life, tcpDefaultLifetime) // RFC 8656 section 7.3
	a.mu.Lock()
	if a.expiry != nil {
		a.expiry.Reset(life)
	}
	a.mu.Unlock()
	succeed(c, m, req.key, lifetimeAttr(life))
}

// peerAddresses returns the XOR-PEER-ADDRESS attributes of m.
func peerAddresses(m *stun.Message) []netip.AddrPort {
	var out []netip.AddrPort
	for _, attr := range m.Attributes {
		if attr.Type != stun.AttrXORPeerAddress {
			continue
		}
		one := &stun.Message{TransactionID: m.TransactionID}
		one.Add(stun.AttrXORPeerAddress, attr.Value)
		var x stun.XORMappedAddress
		if x.GetFromAs(one, stun.AttrXORPeerAddress) != nil {
			return nil
		}
		ip, ok := netip.AddrFromSlice(x.IP)
		if !ok {
			return nil
		}
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(x.Port)))
	}
	return out
}

// createPermission installs permissions for every peer in the request,
// or none if the peer filter refuses one of them (403).
func (t *tcpRelays) createPermission(c *guardedConn, a *tcpAllocation, m *stun.Message) {
	req, ok := t.authenticate(c, m)
	if !ok {
		return
	}
	peers := peerAddresses(m)
	if len(peers) == 0 {
		t.reply(c, m, &req.key, stun.CodeBadRequest)
		return
	}
	for _, p := range peers {
		if !t.r.filter.permits(p.Addr().AsSlice()) {
			t.r.m.peersRefused.Add(1)
			t.r.cfg.Logger.Info("relay peer refused", "client", c.RemoteAddr().String(), "peer", p.Addr().String())
			t.reply(c, m, &req.key, stun.CodeForbidden)
			return
		}
	}
	now := time.Now()
	a.mu.Lock()
	for ip, exp := range a.perms {
		if now.After(exp) {
			delete(a.perms, ip)
		}
	}
	full := len(a.perms)+len(peers) > tcpMaxPermissions
	if !full {
		for _, p := range peers {
			a.perms[p.Addr()] = now.Add(tcpPermissionLife)
		}
	}
	a.mu.Unlock()
	if full {
		t.reply(c, m, &req.key, stun.CodeInsufficientCapacity)
		return
	}
	t.r.m.permissions.Add(int64(len(peers)))
	succeed(c, m, req.key)
}

// connect serves Connect (RFC 6062 section 5.2): a connection from the
// relayed transport address to the peer, answered when it is made.
func (t *tcpRelays) connect(c *guardedConn, a *tcpAllocation, m *stun.Message) {
	req, ok := t.authenticate(c, m)
	if !ok {
		return
	}
	if a == nil {
		t.reply(c, m, &req.key, stun.CodeAllocMismatch)
		return
	}
	peers := peerAddresses(m)
	if len(peers) != 1 {
		t.reply(c, m, &req.key, stun.CodeBadRequest)
		return
	}
	peer := peers[0]
	if !t.r.filter.permits(peer.Addr().AsSlice()) {
		t.r.m.peersRefused.Add(1)
		t.r.cfg.Logger.Info("relay peer refused", "client", c.RemoteAddr().String(), "peer", peer.Addr().String())
		t.reply(c, m, &req.key, stun.CodeForbidden)
		return
	}
	a.mu.Lock()
	busy := a.connecting[peer] || a.closed
	for _, pc := range a.conns {
		busy = busy || pc.peer == peer
	}
	full := len(a.conns)+len(a.connecting) >= tcpMaxPeerConns
	if !busy && !full {
		a.connecting[peer] = true
		a.wg.Add(1)
	}
	a.mu.Unlock()
	switch {
	case busy:
		t.reply(c, m, &req.key, codeConnAlreadyExists)
		return
	case full:
		t.reply(c, m, &req.key, stun.CodeInsufficientCapacity)
		return
	}
	go func() {
		defer a.wg.Done()
		d := net.Dialer{LocalAddr: a.bindAddr, Control: reusePort, Timeout: tcpConnectTimeout}
		conn, err := d.DialContext(a.ctx, "tcp", peer.String())
		a.mu.Lock()
		delete(a.connecting, peer)
		a.mu.Unlock()
		if err != nil {
			t.r.cfg.Logger.Info("relay: connect to peer failed", "peer", peer.String(), "err", err)
			t.reply(c, m, &req.key, codeConnTimeoutFailure)
			return
		}
		pc := a.pending(conn, peer)
		if pc == nil {
			t.reply(c, m, &req.key, codeConnTimeoutFailure)
			return
		}
		succeed(c, m, req.key, connectionID(pc.id))
	}()
}

func connectionID(id uint32) stun.RawAttribute {
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, id)
	return stun.RawAttribute{Type: stun.AttrConnectionID, Value: v}
}

// connectionBind serves ConnectionBind on a new client connection (RFC
// 6062 section 5.4): the connection becomes the client data connection
// of the pending peer connection.
func (t *tcpRelays) connectionBind(c *guardedConn, a *tcpAllocation, m *stun.Message) *peerStream {
	req, ok := t.authenticate(c, m)
	if !ok {
		return nil
	}
	t.r.mu.Lock()
	_, allocated := t.r.owner[c.tuple] // a UDP allocation's connection is no data connection either
	t.r.mu.Unlock()
	v, err := m.Get(stun.AttrConnectionID)
	if err != nil || len(v) != 4 || a != nil || allocated {
		t.reply(c, m, &req.key, stun.CodeBadRequest)
		return nil
	}
	t.mu.Lock()
	pc := t.conns[binary.BigEndian.Uint32(v)]
	t.mu.Unlock()
	if pc == nil {
		t.reply(c, m, &req.key, stun.CodeBadRequest)
		return nil
	}
	if userOf(pc.a.claim.user) != userOf(req.username) {
		t.r.m.wrongCredentials.Add(1)
		t.reply(c, m, &req.key, stun.CodeWrongCredentials)
		return nil
	}
	pc.a.mu.Lock()
	ok = !pc.bound && !pc.a.closed
	if ok {
		pc.bound, pc.client = true, c
	}
	pc.a.mu.Unlock()
	if !ok || !pc.timer.Stop() {
		t.reply(c, m, &req.key, stun.CodeBadRequest)
		return nil
	}
	succeed(c, m, req.key)
	return pc
}

// acceptPeers takes connections on the relayed transport address from
// peers with a permission, announcing each with a ConnectionAttempt on
// the control connection (RFC 6062 section 5.3).
func (a *tcpAllocation) acceptPeers() {
	defer a.wg.Done()
	for {
		conn, err := a.ln.Accept()
		if err != nil {
			return
		}
		ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
		peer := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		a.mu.Lock()
		permitted := time.Now().Before(a.perms[peer.Addr()])
		a.mu.Unlock()
		if !permitted {
			a.t.r.m.peersRefused.Add(1)
			_ = conn.Close()
			continue
		}
		pc := a.pending(conn, peer)
		if pc == nil {
			continue
		}
		ind, err := stun.Build(stun.TransactionID, stun.NewType(methodConnectionAttempt, stun.ClassIndication),
			xorAddress{stun.AttrXORPeerAddress, peer},
			connectionID(pc.id), stun.Fingerprint)
		if err == nil {
			_ = a.control.send(ind.Raw)
		}
	}
}

// pending registers a new peer connection under a fresh CONNECTION-ID,
// closed unless a client data connection binds it in time. It returns
// nil (and closes conn) if the allocation has closed or is full.
func (a *tcpAllocation) pending(conn net.Conn, peer netip.AddrPort) *peerStream {
	t := a.t
	pc := &peerStream{a: a, conn: conn, peer: peer}
	t.mu.Lock()
	for pc.id == 0 || t.conns[pc.id] != nil {
		var b [4]byte
		_, _ = rand.Read(b[:])
		pc.id = binary.BigEndian.Uint32(b[:])
	}
	a.mu.Lock()
	ok := !a.closed && len(a.conns) < tcpMaxPeerConns
	if ok {
		a.conns[pc.id] = pc
		t.conns[pc.id] = pc
		pc.timer = time.AfterFunc(tcpBindTimeout, pc.close)
	}
	a.mu.Unlock()
	t.mu.Unlock()
	if !ok {
		_ = conn.Close()
		return nil
	}
	t.r.m.tcpConns.Add(1)
	return pc
}

// close closes the peer connection and forgets it, once.
func (pc *peerStream) close() {
	pc.once.Do(func() {
		a, t := pc.a, pc.a.t
		t.mu.Lock()
		delete(t.conns, pc.id)
		t.mu.Unlock()
		a.mu.Lock()
		delete(a.conns, pc.id)
		client := pc.client
		a.mu.Unlock()
		_ = pc.conn.Close()
		if client != nil { // its pipe may be blocked on either side
			_ = client.Conn.Close()
		}
		t.r.m.tcpConns.Add(-1)
	})
}

// pipe relays between the client data connection c and its peer until
// both are done, passing a half-close on from either side.
func (pc *peerStream) pipe(c *guardedConn) {
	a, r := pc.a, pc.a.t.r
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := relayStream(a.ctx, c.Conn, pc.conn, a.in, &r.m.fromPeers); err == nil {
			closeWrite(c.Conn)
			return
		}
		pc.close()
		_ = c.Conn.Close()
	}()
	if err := relayStream(a.ctx, pc.conn, c.br, a.out, &r.m.toPeers); err == nil {
		closeWrite(pc.conn)
	} else {
		pc.close()
		_ = c.Conn.Close()
	}
	<-done
	pc.close()
	_ = c.Conn.Close()
}

// relayStream copies src to dst within the bandwidth limit b (TCP's flow
// control slows the sender), counting bytes; nil when src ends cleanly.
func relayStream(ctx context.Context, dst io.Writer, src io.Reader, b *bucket, n *atomic.Int64) error {
	buf := make([]byte, min(tcpCopyChunk, max(int(b.rate), 1)))
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if wait := b.reserve(k); wait > 0 {
				tm := time.NewTimer(wait)
				select {
				case <-tm.C:
				case <-ctx.Done():
					tm.Stop()
					return ctx.Err()
				}
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			n.Add(int64(k))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// close deletes the allocation: its listener, its peer connections (and
// so their client data connections) and its quota. It waits for the
// allocation's goroutines.
func (a *tcpAllocation) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	if a.expiry != nil {
		a.expiry.Stop()
	}
	if a.ends != nil {
		a.ends.Stop()
	}
	conns := make([]*peerStream, 0, len(a.conns))
	for _, pc := range a.conns {
		conns = append(conns, pc)
	}
	a.mu.Unlock()
	a.t.mu.Lock()
	if a.t.allocs[a.control] == a {
		delete(a.t.allocs, a.control)
	}
	a.t.mu.Unlock()
	a.cancel()
	_ = a.ln.Close()
	for _, pc := range conns {
		pc.close()
	}
	a.wg.Wait()
	a.t.releasePort(a.bindAddr.Port)
	a.t.r.unclaim(a.claim)
}

// controlClosed deletes the allocation made over c, which has closed.
func (t *tcpRelays) controlClosed(c *guardedConn) {
	t.mu.Lock()
	a := t.allocs[c]
	t.mu.Unlock()
	if a != nil {
		a.close()
	}
}

// close deletes every TCP allocation.
func (t *tcpRelays) close() {
	t.mu.Lock()
	t.closed = true
	all := make([]*tcpAllocation, 0, len(t.allocs))
	for _, a := range t.allocs {
		all = append(all, a)
	}
	t.mu.Unlock()
	for _, a := range all {
		a.close()
	}
}
