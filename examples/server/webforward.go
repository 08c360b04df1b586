package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/pki"
)

// The web client's join of a meeting that another front end of the pool
// hosts.
//
// Design: a proxy, not a handoff. The browser stays on the front end it
// reached (its page, its ticket request and its signaling WebSocket are
// same-origin, as the page's Content-Security-Policy and the socket's
// Origin check demand, and the browser need not trust, nor even reach,
// another front end's HTTPS name). That front end authenticates the user
// as for any join; if the store names another front end as the meeting's
// host, it asks the host for a ticket over the pool's mutual TLS,
// asserting the identity it authenticated (poolTicket: the host takes it
// only from a client certificate naming the pool), and, when the browser
// opens its socket with that ticket, relays the socket's messages to the
// host's socket and back. Only the signaling passes through here: the SDP
// comes from the host's media bridge, so the media flows between the
// browser and the host's bridge directly (its advertised media address
// and ICE candidates). A join through the host itself, or outside a pool,
// is served as before.
//
// If the host dies, the relayed socket closes with no "ended" message;
// the web client then asks for a new ticket and rejoins, which makes
// another front end the host (the lease lapses).

// Limits of the relayed sockets: from the browser, an SDP offer and its
// JSON, as the host allows; from the host, whatever it sends (rosters,
// recorded names), bounded all the same.
const (
	forwardFromBrowser = 68 << 10
	forwardFromHost    = 4 << 20
	forwardTicketBody  = 4 << 10
	// forwardTicketTTL is how long a ticket the host issued may wait for
	// its socket here: the host's own ticket lifetime bounds it anyway.
	forwardTicketTTL = time.Minute
)

// webForward sends the web joins of meetings hosted by another front end
// of the pool to their host.
type webForward struct {
	node    string // this front end's pool address, as leases name it
	focus   *conference.Focus
	address func(ctx context.Context, node, listener string) (string, error)
	peers   *http.Client // over mutual TLS, with this front end's pool certificate
	// verifier checks that a poolTicket request comes from a pool peer.
	verifier *pki.Verifier
	tickets  http.Handler // the local signaling's tickets and sockets
	sockets  http.Handler
	// forwarded counts the web joins relayed to another front end.
	forwarded prometheus.Counter
	logger    *slog.Logger

	mu      sync.Mutex
	pending map[string]forwardTicket // host's ticket -> where and whose
	conns   map[*websocket.Conn]forwardConn
	closed  bool
	wg      sync.WaitGroup
}

type forwardTicket struct {
	host    string // the host's HTTPS address
	user    string // the identity's URI
	expires time.Time
}

type forwardConn struct {
	user   string
	cancel context.CancelFunc
}

// forwardedIdentity is what a front end asserts to the host: the identity
// it authenticated, the guest's display name, and the browser's address
// (the host's per-source ticket limits apply to it).
type forwardedIdentity struct {
	Identity    *auth.Identity `json:"identity"`
	DisplayName string         `json:"display_name"`
	Source      string         `json:"source"`
}

func newWebForward(node string, focus *conference.Focus, address func(ctx context.Context, node, listener string) (string, error),
	cert *pki.KeyPair, verifier *pki.Verifier, tickets, sockets http.Handler, reg prometheus.Registerer, logger *slog.Logger) *webForward {
	tlsCfg := pki.ClientTLSConfigByName(cert, verifier)
	tlsCfg.ServerName = poolName // the host's built-in certificate names the pool
	f := &webForward{node: node, focus: focus, address: address, verifier: verifier, tickets: tickets, sockets: sockets, logger: logger,
		peers:   &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 5 * time.Second, MaxIdleConnsPerHost: 4}},
		pending: map[string]forwardTicket{}, conns: map[*websocket.Conn]forwardConn{},
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_web_joins_forwarded_total",
			Help: "Web client joins relayed to the front end of the pool that hosts the meeting."})}
	reg.MustRegister(f.forwarded)
	return f
}

// hostOf returns the HTTPS address of the front end that hosts meeting,
// or "" if this one does or may (nobody hosts it, or the holder's lease
// has lapsed): the join is then served here.
func (f *webForward) hostOf(ctx context.Context, meeting string) (addr string, held conference.Lease, err error) {
	l, err := f.focus.Host(ctx, conference.MeetingID(meeting))
	switch {
	case errors.Is(err, conference.ErrNotFound):
		return "", l, nil
	case err != nil:
		return "", l, err
	case l.Host == f.node || !time.Now().Before(l.Expires) || f.address == nil:
		return "", l, nil
	}
	addr, err = f.address(ctx, l.Host, "https")
	return addr, l, err
}

// ticket serves POST /api/meetings/{meeting}/ticket behind the
// Authenticator: through the local signaling, or, for a meeting another
// front end hosts, by asking the host for the ticket.
func (f *webForward) ticket(w http.ResponseWriter, r *http.Request) {
	id, ok := auth.IdentityFromContext(r.Context())
	meeting := r.PathValue("meeting")
	if !ok || id == nil || meeting == "" {
		f.tickets.ServeHTTP(w, r) // which answers
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	host, lease, err := f.hostOf(ctx, meeting)
	if err != nil {
		f.logger.Warn("web join: the meeting's host is unknown", "meeting", meeting, "err", err)
		unavailable(w, time.Second, "the meeting's host is unknown; try again")
		return
	}
	if host == "" {
		if lease.Host != "" && lease.Host != f.node && time.Now().Before(lease.Expires) {
			// Hosted by a front end that advertises no HTTPS address.
			unavailable(w, time.Until(lease.Expires), "the meeting is hosted by another front end, unreachable now")
			return
		}
		f.tickets.ServeHTTP(w, r)
		return
	}
	var body struct {
		DisplayName string `json:"display_name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, forwardTicketBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		jsonError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	src := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		src = ap.Addr().String()
	}
	asserted, _ := json.Marshal(forwardedIdentity{Identity: id, DisplayName: body.DisplayName, Source: src})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/pool/meetings/"+url.PathEscape(meeting)+"/ticket", bytes.NewReader(asserted))
	req.Header.Set("Content-Type", "application/json")
	res, err := f.peers.Do(req)
	if err != nil {
		f.logger.Warn("web join: the meeting's host did not answer", "meeting", meeting, "host", lease.Host, "err", err)
		unavailable(w, time.Second, "the meeting's host did not answer; try again")
		return
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, forwardTicketBody))
	if err != nil {
		unavailable(w, time.Second, "the meeting's host did not answer; try again")
		return
	}
	if res.StatusCode == http.StatusOK {
		var tk struct{ Ticket string }
		if json.Unmarshal(answer, &tk) != nil || tk.Ticket == "" {
			f.logger.Error("web join: the host's ticket is unreadable", "meeting", meeting, "host", lease.Host)
			unavailable(w, time.Second, "the meeting's host gave no ticket")
			return
		}
		f.remember(tk.Ticket, forwardTicket{host: host, user: id.URI, expires: time.Now().Add(forwardTicketTTL)})
	}
	// The host's answer, refusals included (their words name the field).
	for _, h := range []string{"Content-Type", "Retry-After", "Cache-Control"} {
		if v := res.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(answer)
}

// unavailable answers 503 with Retry-After.
func unavailable(w http.ResponseWriter, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	jsonError(w, http.StatusServiceUnavailable, msg)
}

// remember keeps a host's ticket until its socket opens, dropping those
// that waited too long.
func (f *webForward) remember(key string, t forwardTicket) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, old := range f.pending {
		if now.After(old.expires) {
			delete(f.pending, k)
		}
	}
	f.pending[key] = t
}

// take redeems a host's ticket, once.
func (f *webForward) take(key string) (forwardTicket, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.pending[key]
	delete(f.pending, key)
	return t, ok && time.Now().Before(t.expires)
}

// socket serves GET /api/signaling/socket: a ticket the host issued opens
// a socket relayed to the host's; any other goes to the local signaling.
func (f *webForward) socket(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("ticket")
	if !sameOriginRequest(r) {
		f.sockets.ServeHTTP(w, r) // which refuses it, leaving the ticket
		return
	}
	t, ok := f.take(key)
	if !ok {
		f.sockets.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dialCtx, dialCancel := context.WithTimeout(r.Context(), 10*time.Second)
	up, _, err := websocket.Dial(dialCtx, "wss://"+t.host+"/api/signaling/socket?ticket="+url.QueryEscape(key), &websocket.DialOptions{HTTPClient: f.peers})
	dialCancel()
	if err != nil {
		f.logger.Warn("web join: the host's socket did not open", "host", t.host, "err", err)
		jsonError(w, http.StatusBadGateway, "the meeting's host is unreachable; ask for a new ticket")
		return
	}
	up.SetReadLimit(forwardFromHost)
	down, err := websocket.Accept(auth.LimitWebSocketFrames(w, forwardFromBrowser), r, nil)
	if err != nil {
		_ = up.Close(websocket.StatusGoingAway, "the browser's socket did not open")
		return
	}
	down.SetReadLimit(forwardFromBrowser)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = up.Close(websocket.StatusGoingAway, "server closing")
		_ = down.Close(websocket.StatusGoingAway, "server closing")
		return
	}
	f.conns[down] = forwardConn{user: t.user, cancel: cancel}
	f.wg.Add(1)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, down)
		f.mu.Unlock()
		f.wg.Done()
	}()
	f.forwarded.Inc()
	f.relay(ctx, down, up)
}

// relay copies messages both ways until either side closes or ctx ends,
// then closes the other side: with the host's close code and reason when
// the host closed, so the page sees the reason the host gave; with
// "going away" when the host is gone (the page then rejoins) or this front
// end closes.
func (f *webForward) relay(ctx context.Context, down, up *websocket.Conn) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() { // the browser's messages to the host
		err := pipe(up, down)
		reason := "closed"
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Reason != "" {
			reason = ce.Reason
		}
		_ = up.Close(websocket.StatusNormalClosure, reason)
	})
	wg.Go(func() { // the host's messages to the browser
		err := pipe(down, up)
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.StatusNoStatusRcvd && ce.Code != websocket.StatusAbnormalClosure {
			_ = down.Close(ce.Code, ce.Reason)
		} else {
			_ = down.Close(websocket.StatusGoingAway, "the meeting's host went away")
		}
		close(done)
	})
	select {
	case <-done:
	case <-ctx.Done(): // this front end closes, or the user is signed out
		_ = down.Close(websocket.StatusGoingAway, "server closing")
	}
	_ = up.CloseNow()
	_ = down.CloseNow()
	wg.Wait()
}

// pipe copies src's messages to dst until an error, which it returns:
// src's read error (a *websocket.CloseError when src closed), or dst's
// write error.
func pipe(dst, src *websocket.Conn) error {
	for {
		typ, b, err := src.Read(context.Background()) // ends when src closes
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = dst.Write(ctx, typ, b)
		cancel()
		if err != nil {
			return fmt.Errorf("relaying: %w", err)
		}
	}
}

// sameOriginRequest is the signaling's rule for a WebSocket's Origin: a
// browser's must name the host the request was made to.
func sameOriginRequest(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// poolTicket serves POST /pool/meetings/{meeting}/ticket on the host: a
// front end of the pool, proved by its client certificate, asks for a
// ticket for the identity it authenticated. A browser cannot get here
// with an identity of its own choosing: without a pool certificate the
// request is refused.
func (f *webForward) poolTicket(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		jsonError(w, http.StatusForbidden, "for the pool's front ends only")
		return
	}
	if _, err := f.verifier.Verify(r.Context(), r.TLS.PeerCertificates, pki.VerifyOptions{Purpose: pki.MutualServerAuth, Names: []string{poolName}}); err != nil {
		jsonError(w, http.StatusForbidden, "for the pool's front ends only")
		return
	}
	var in forwardedIdentity
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, forwardTicketBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		jsonError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	switch {
	case in.Identity == nil:
		jsonError(w, http.StatusBadRequest, "identity: missing")
		return
	case in.Identity.URI == "":
		jsonError(w, http.StatusBadRequest, "identity.URI: missing")
		return
	}
	if in.Source != "" {
		a, err := netip.ParseAddr(in.Source)
		if err != nil {
			jsonError(w, http.StatusBadRequest, "source: "+err.Error())
			return
		}
		r.RemoteAddr = netip.AddrPortFrom(a, 0).String() // the browser's, for the per-source limits
	}
	next, _ := json.Marshal(map[string]string{"display_name": in.DisplayName})
	r.Body = io.NopCloser(bytes.NewReader(next))
	r.ContentLength = int64(len(next))
	f.tickets.ServeHTTP(w, r.WithContext(auth.ContextWithIdentity(r.Context(), in.Identity)))
}

// signOut ends the relayed sockets of user (its rights withdrawn); the
// host ends its own side too. It returns how many it ended.
func (f *webForward) signOut(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for conn, c := range f.conns {
		if c.user == user {
			c.cancel()
			delete(f.conns, conn)
			n++
		}
	}
	return n
}

// Close ends every relayed socket and waits for them.
func (f *webForward) Close() {
	f.mu.Lock()
	f.closed = true
	for _, c := range f.conns {
		c.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	f.peers.CloseIdleConnections()
}
