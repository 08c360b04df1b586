package parleytest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/conference"
)

// Membership is a client's INVITE dialog with a meeting's focus: in the
// lobby (182 Queued) until admitted, then in the meeting (200, ACKed),
// until it leaves or the focus ends it (BYE).
type Membership struct {
	c      *Client
	invite *sip.Request

	mu      sync.Mutex
	state   conference.State
	dialog  *sip.Response // the 182 or 200 that made the dialog
	cseq    uint32
	err     error // why it ended
	changed chan struct{}
	done    chan struct{} // closed when the membership ends
}

// Join INVITEs meeting m's focus and returns once the focus has placed
// the client: in the meeting (State Joined) or in its lobby (InLobby;
// Admitted waits for the outcome). A refusal is a *StatusError (403 for
// someone the access policy refuses, 404 for no such meeting).
func (c *Client) Join(ctx context.Context, m *conference.Meeting) (*Membership, error) {
	req, err := c.request(sip.INVITE, m.Focus())
	if err != nil {
		return nil, err
	}
	tx, err := c.client.TransactionRequest(context.Background(), req)
	if err != nil {
		return nil, fmt.Errorf("parleytest: INVITE: %w", err)
	}
	ms := &Membership{c: c, invite: req, changed: make(chan struct{}), done: make(chan struct{})}
	c.membershipsMu.Lock()
	c.memberships[req.CallID().Value()] = ms
	c.membershipsMu.Unlock()
	go ms.follow(tx)
	for {
		ms.mu.Lock()
		state, ended, changed := ms.state, ms.err, ms.changed
		ms.mu.Unlock()
		switch {
		case ended != nil:
			return nil, ended
		case state != 0:
			return ms, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			ms.end(ctx.Err())
			return nil, fmt.Errorf("parleytest: INVITE %s: %w", m.ID, ctx.Err())
		}
	}
}

// follow reads the INVITE's responses until the final one, answering a
// Digest challenge once.
func (ms *Membership) follow(tx sip.ClientTransaction) {
	c := ms.c
	challenged := false
	for {
		var res *sip.Response
		select {
		case res = <-tx.Responses():
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				ms.end(fmt.Errorf("parleytest: INVITE: %w", err))
			} else {
				ms.end(errors.New("parleytest: INVITE: the transaction ended without a final response"))
			}
			return
		}
		switch {
		case res.StatusCode == 401 && !challenged:
			challenged = true
			tx.Terminate()
			next, err := c.client.TransactionDigestAuth(context.Background(), ms.invite, res,
				sipgo.DigestAuth{Username: c.cfg.User, Password: c.cfg.Password})
			if err != nil {
				ms.end(fmt.Errorf("parleytest: INVITE: %w", err))
				return
			}
			tx = next
		case res.StatusCode == 182:
			ms.set(conference.InLobby, res)
		case res.StatusCode < 200:
		case res.StatusCode < 300:
			ms.set(conference.Joined, res)
			ack := ms.inDialog(sip.ACK, ms.invite.CSeq().SeqNo) // RFC 3261 13.2.2.4: the INVITE's number
			_ = c.client.WriteRequest(ack)
			tx.Terminate()
			return
		default:
			ms.end(&StatusError{Method: sip.INVITE, Code: res.StatusCode, Reason: res.Reason})
			tx.Terminate()
			return
		}
	}
}

func (ms *Membership) set(state conference.State, res *sip.Response) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.err != nil {
		return
	}
	ms.state, ms.dialog = state, res
	close(ms.changed)
	ms.changed = make(chan struct{})
}

// end ends the membership with why, once.
func (ms *Membership) end(why error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.err != nil {
		return
	}
	ms.err, ms.state = why, conference.Gone
	close(ms.changed)
	close(ms.done)
}

// State is where the client is: InLobby, Joined or Gone.
func (ms *Membership) State() conference.State {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.state
}

// Ended is closed when the membership ends: the focus sent a BYE
// (ejected, the meeting ended, the focus shut down) or answered the
// INVITE with a failure (rejected from the lobby, 603; the wait timed
// out, 480). Err then says why.
func (ms *Membership) Ended() <-chan struct{} { return ms.done }

// Err is why the membership ended, nil while it lasts.
func (ms *Membership) Err() error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.err
}

// Admitted waits until the client is in the meeting: nil once it is, the
// reason if the membership ended instead, or ctx's error.
func (ms *Membership) Admitted(ctx context.Context) error {
	for {
		ms.mu.Lock()
		state, err, changed := ms.state, ms.err, ms.changed
		ms.mu.Unlock()
		switch {
		case err != nil:
			return err
		case state == conference.Joined:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Admit admits participant pid from the lobby, as a leader does, with a
// conference control request (INFO) in the client's dialog.
func (ms *Membership) Admit(ctx context.Context, pid conference.ParticipantID) error {
	return ms.control(ctx, &conference.ControlRequest{Admit: &conference.Target{Participant: string(pid)}})
}

// Reject turns participant pid away from the lobby.
func (ms *Membership) Reject(ctx context.Context, pid conference.ParticipantID) error {
	return ms.control(ctx, &conference.ControlRequest{Reject: &conference.Target{Participant: string(pid)}})
}

// Eject removes joined participant pid from the meeting.
func (ms *Membership) Eject(ctx context.Context, pid conference.ParticipantID) error {
	return ms.control(ctx, &conference.ControlRequest{Eject: &conference.Target{Participant: string(pid)}})
}

func (ms *Membership) control(ctx context.Context, cr *conference.ControlRequest) error {
	if ms.State() != conference.Joined {
		return fmt.Errorf("parleytest: %s: not in the meeting", cr.Op())
	}
	req := ms.inDialog(sip.INFO, ms.nextCSeq())
	cr.ID = strconv.FormatUint(uint64(req.CSeq().SeqNo), 10)
	req.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	req.SetBody(cr.Marshal())
	_, err := ms.c.do(ctx, req)
	return err
}

// Leave ends the membership: a BYE in the dialog (in the lobby too).
func (ms *Membership) Leave(ctx context.Context) error {
	if ms.State() == conference.Gone {
		return ms.Err()
	}
	_, err := ms.c.do(ctx, ms.inDialog(sip.BYE, ms.nextCSeq()))
	ms.end(errors.New("parleytest: left the meeting"))
	return err
}

func (ms *Membership) nextCSeq() uint32 {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.cseq == 0 {
		ms.cseq = ms.invite.CSeq().SeqNo
	}
	ms.cseq++
	return ms.cseq
}

// inDialog builds a request in the dialog with the focus, numbered seq.
func (ms *Membership) inDialog(method sip.RequestMethod, seq uint32) *sip.Request {
	ms.mu.Lock()
	res := ms.dialog
	ms.mu.Unlock()
	target := ms.invite.Recipient
	if contact := res.Contact(); contact != nil {
		target = *contact.Address.Clone()
	}
	req := sip.NewRequest(method, target)
	req.AppendHeader(ms.invite.From())
	req.AppendHeader(res.To())
	req.AppendHeader(ms.invite.CallID())
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	req.SetTransport("TLS")
	req.SetDestination(ms.c.cfg.Addr)
	return req
}

func (c *Client) onBye(req *sip.Request, tx sip.ServerTransaction) {
	defer c.answer(req, tx)()
	c.membershipsMu.Lock()
	ms := c.memberships[req.CallID().Value()]
	c.membershipsMu.Unlock()
	if ms == nil {
		return
	}
	why := "the focus ended the dialog"
	if h := req.GetHeader("Reason"); h != nil {
		why += ": " + h.Value()
	}
	ms.end(errors.New("parleytest: " + why))
}
