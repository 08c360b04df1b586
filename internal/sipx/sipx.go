// Package sipx holds SIP helpers that the proxies in this module (the
// presence Router, the Access Edge) share and sipgo 1.7 does not provide.
package sipx

import (
	"context"
	"net"
	"slices"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Cancel sends a CANCEL for invite, an INVITE this proxy forwarded, and
// waits for its answer or ctx (sipgo 1.7 has no client CANCEL). The CANCEL
// carries what RFC 3261 section 9.1 asks: the INVITE's Request-URI, top
// Via (branch), Call-ID, From, To, CSeq number and Route.
func Cancel(ctx context.Context, client *sipgo.Client, invite *sip.Request) error {
	c := sip.NewRequest(sip.CANCEL, invite.Recipient)
	c.AppendHeader(sip.HeaderClone(invite.Via()))
	c.AppendHeader(sip.HeaderClone(invite.From()))
	c.AppendHeader(sip.HeaderClone(invite.To()))
	c.AppendHeader(sip.HeaderClone(invite.CallID()))
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.AppendHeader(&sip.CSeqHeader{SeqNo: invite.CSeq().SeqNo, MethodName: sip.CANCEL})
	for _, r := range invite.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(r))
	}
	c.SetBody(nil) // Content-Length: 0, which stream transports need
	c.SetTransport(invite.Transport())
	c.SetDestination(invite.Destination())
	keep := func(*sipgo.Client, *sip.Request) error { return nil } // the INVITE's Via, as built
	tx, err := client.TransactionRequest(ctx, c, keep)
	if err != nil {
		return err
	}
	defer tx.Terminate()
	select {
	case <-tx.Responses():
	case <-tx.Done():
	case <-ctx.Done():
	}
	return nil
}

// Resolve returns addr (host:port) with its host resolved by r to the
// address sipgo would dial (the first IPv4 one), which is how requests
// arriving over that connection show their source. addr itself if it is
// an address already or cannot be resolved.
func Resolve(ctx context.Context, r *net.Resolver, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) != nil {
		return addr
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return addr
	}
	ip := ips[0].IP
	for _, a := range ips {
		if a.IP.To4() != nil {
			ip = a.IP
			break
		}
	}
	return net.JoinHostPort(ip.String(), port)
}

// Message is what RemoveHeaders needs of a request or response.
type Message interface {
	Headers() []sip.Header
	RemoveHeader(string) bool
}

// RemoveHeaders removes every header named in names, whatever its case
// and however many copies there are. sipgo's RemoveHeader removes only the
// first header of exactly the name it was received with, which a sender
// could defeat with a second copy or another case.
func RemoveHeaders(m Message, names ...string) {
	for {
		found := ""
		for _, h := range m.Headers() {
			if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, h.Name()) }) {
				found = h.Name()
				break
			}
		}
		if found == "" || !m.RemoveHeader(found) {
			return
		}
	}
}
