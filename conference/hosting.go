package conference

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// validHosting checks the pool fields of cfg (Leases, Host, LeaseTTL,
// HostAddress) and applies the default TTL.
func validHosting(cfg *FocusConfig) error {
	if cfg.Leases == nil {
		switch {
		case cfg.Host != "":
			return errors.New("conference: FocusConfig.Host needs FocusConfig.Leases")
		case cfg.LeaseTTL != 0:
			return errors.New("conference: FocusConfig.LeaseTTL needs FocusConfig.Leases")
		case cfg.HostAddress != nil:
			return errors.New("conference: FocusConfig.HostAddress needs FocusConfig.Leases")
		case cfg.Forwarder != nil:
			return errors.New("conference: FocusConfig.Forwarder needs FocusConfig.Leases")
		}
		return nil
	}
	if _, ok := cfg.Meetings.(FencedMeetingStore); !ok {
		return errors.New("conference: FocusConfig.Meetings must be a FencedMeetingStore with FocusConfig.Leases")
	}
	switch {
	case cfg.Host == "":
		return errors.New("conference: FocusConfig.Host is required with FocusConfig.Leases")
	case cfg.LeaseTTL < 0:
		return errors.New("conference: FocusConfig.LeaseTTL must not be negative")
	case cfg.LeaseTTL > 0 && cfg.LeaseTTL < 3*time.Millisecond:
		return errors.New("conference: FocusConfig.LeaseTTL must be at least 3ms")
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	return nil
}

// start sets up the live state of meeting id: the meeting from the store
// and, in a pool, its host lease, or a *HostedError if another front end
// hosts it.
func (f *Focus) start(ctx context.Context, id MeetingID) (*conf, error) {
	m, err := f.Meeting(ctx, id)
	if err != nil {
		return nil, err
	}
	c := &conf{meeting: m, parts: map[ParticipantID]*participant{}, watchers: map[int]func(Event){},
		subs: map[*subscriber]struct{}{}, cache: map[cacheKey][]byte{}}
	if f.cfg.Leases == nil {
		return c, nil
	}
	lctx, cancel := context.WithTimeout(ctx, f.storeTimeout())
	defer cancel()
	l, err := f.cfg.Leases.Acquire(lctx, id, f.cfg.Host, f.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	c.lease, c.leased = l, true
	f.cfg.Logger.Info("meeting hosted here", "meeting", id, "host", l.Host, "token", l.Token)
	return c, nil
}

// storeTimeout bounds a lease request: a third of the TTL at most, so a
// renewal that hangs leaves time for the next.
func (f *Focus) storeTimeout() time.Duration {
	return min(defaultStoreTimeout, f.cfg.LeaseTTL/3)
}

// releaseLease gives up the lease of the ended live meeting c, if it had
// one. A failure is only logged: the lease lapses within its TTL anyway.
func (f *Focus) releaseLease(c *conf) {
	c.mu.Lock()
	l, leased := c.lease, c.leased
	c.leased = false
	c.mu.Unlock()
	if !leased {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.storeTimeout())
	defer cancel()
	if err := f.cfg.Leases.Release(ctx, l); err != nil {
		f.cfg.Logger.Warn("host lease not released; it lapses", "meeting", l.Meeting, "token", l.Token, "err", err)
	}
}

// renewLeases renews the leases of the live meetings every third of the
// TTL, until the Focus closes. A meeting whose lease is lost, or whose
// lease lapsed by this process's clock while the store could not be
// reached, ends here: another front end may host it now.
func (f *Focus) renewLeases() {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		confs := make([]*conf, 0, len(f.confs))
		for _, c := range f.confs {
			confs = append(confs, c)
		}
		f.mu.Unlock()
		for _, c := range confs {
			f.renew(c)
		}
		f.checkHosts() // the joins passed on to other hosts
	}
}

// renew renews c's lease, or ends c if it is lost.
func (f *Focus) renew(c *conf) {
	c.mu.Lock()
	l, leased := c.lease, c.leased
	c.mu.Unlock()
	if !leased {
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.storeTimeout())
	nl, err := f.cfg.Leases.Renew(ctx, l, f.cfg.LeaseTTL)
	cancel()
	c.mu.Lock()
	if c.dead || !c.leased || c.lease.Token != l.Token {
		c.mu.Unlock()
		return
	}
	switch {
	case err == nil:
		c.lease = nl
		c.mu.Unlock()
	case errors.Is(err, ErrLeaseLost) || !time.Now().Before(l.Expires):
		c.leased = false // not this front end's to release
		f.cfg.Logger.Warn("host lease lost: the meeting ends here", "meeting", l.Meeting, "token", l.Token, "err", err)
		f.endLocked(c)
	default:
		c.mu.Unlock()
		if f.ctx.Err() == nil {
			f.cfg.Logger.Warn("host lease not renewed; trying again", "meeting", l.Meeting, "expires", l.Expires, "err", err)
		}
	}
}

// Host returns the lease of the front end that hosts meeting id now,
// from the pool's store: this one's or another's. Without
// FocusConfig.Leases, or if nobody hosts it, an error wraps ErrNotFound.
func (f *Focus) Host(ctx context.Context, id MeetingID) (Lease, error) {
	if f.cfg.Leases == nil {
		return Lease{}, fmt.Errorf("%w: no host leases", ErrNotFound)
	}
	return f.cfg.Leases.Holder(ctx, id)
}

// redirect answers an INVITE to a meeting that another front end of the
// pool hosts: 302 to the same meeting at that front end's SIP-TLS
// address, if FocusConfig.HostAddress knows it, else 503 with
// Retry-After, the time the holder's lease has left (it may lapse).
func (f *Focus) redirect(req *sip.Request, tx sip.ServerTransaction, holder Lease) {
	addr := ""
	if f.cfg.HostAddress != nil {
		ctx, cancel := context.WithTimeout(f.ctx, f.storeTimeout())
		a, err := f.cfg.HostAddress(ctx, holder.Host)
		cancel()
		if err != nil {
			f.cfg.Logger.Warn("the host's SIP address is unknown", "meeting", holder.Meeting, "host", holder.Host, "err", err)
		}
		addr = a
	}
	if addr == "" {
		res := sip.NewResponseFromRequest(req, 503, "Hosted by another front end", nil)
		wait := max(time.Until(holder.Expires), time.Second)
		res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second))))
		_ = tx.Respond(res)
		return
	}
	res := sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
	uri := sip.Uri{Scheme: "sip", User: string(holder.Meeting), UriParams: sip.NewParams()}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		uri.Host = addr
	} else {
		uri.Host = host
		uri.Port, _ = strconv.Atoi(port)
	}
	uri.UriParams.Add("transport", "tls")
	res.AppendHeader(&sip.ContactHeader{Address: uri})
	_ = tx.Respond(res)
}
