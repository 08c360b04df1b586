package conference

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// associate signs the member's connection in: a SUBSCRIBE the focus
// refuses (403, not a participant) after the Authenticator has accepted
// the credentials, so the connection's later requests need none.
func (u *member) associate(m *Meeting) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.do(ctx, u.request(sip.SUBSCRIBE, m.Focus(), sip.NewHeader("Event", "conference")))
	if err != nil || res.StatusCode != 403 {
		u.t.Fatalf("associate: %v %v", res, err)
	}
}

// inviteTx starts an INVITE to the focus on an associated connection and
// returns its transaction, to watch provisional responses.
func (u *member) inviteTx(ctx context.Context, m *Meeting) sip.ClientTransaction {
	u.t.Helper()
	u.invite = u.request(sip.INVITE, m.Focus())
	tx, err := u.client.TransactionRequest(ctx, u.invite)
	if err != nil {
		u.t.Fatal(err)
	}
	return tx
}

// response waits for the next response on tx.
func response(t *testing.T, tx sip.ClientTransaction) *sip.Response {
	t.Helper()
	select {
	case res := <-tx.Responses():
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
		return nil
	}
}

// TestLobbyEarlyDialog: someone in the lobby who asks for media in the
// early dialog gets only a lobby grant (music, nothing of the meeting),
// and a BYE there ends the wait (the INVITE answered 487).
func TestLobbyEarlyDialog(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganizer})
	e.user("alice").mustJoin(m)
	bob := e.user("bob")
	bob.associate(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx := bob.inviteTx(ctx, m)
	defer tx.Terminate()
	queued := response(t, tx)
	if queued.StatusCode != 182 || queued.Contact() == nil || !queued.To().Params.Has("tag") {
		t.Fatalf("lobby: %v", queued)
	}
	bob.joined = queued // the early dialog

	code, cr := bob.control(&ControlRequest{ID: "1", AddUser: &AddUser{}})
	if code != 200 || cr.MediaGrant == nil {
		t.Fatalf("add-user from the lobby: %d %+v", code, cr)
	}
	var waiting string
	for _, p := range e.focus.Participants(m.ID) {
		if p.State == InLobby {
			waiting = string(p.ID)
		}
	}
	if c, err := e.tokens.Verify(cr.MediaGrant.Token, MediaClaims{Meeting: m.ID, Participant: ParticipantID(waiting)}); err != nil || c.Role != LobbyRole {
		t.Fatalf("add-user from the lobby: %+v %v", c, err)
	}
	res, err := bob.do(ctx, bob.inDialog(sip.BYE))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("BYE in the early dialog: %v %v", res, err)
	}
	if final := response(t, tx); final.StatusCode != 487 {
		t.Fatalf("INVITE after BYE: %v", final)
	}
	if n := len(e.focus.Participants(m.ID)); n != 1 {
		t.Fatalf("%d participants after bob left the lobby", n)
	}
}

// TestInDialogRequestsNeedTLSAndTheirConnection: the media token and the
// controls travel only over TLS, and only on the connection that made the
// dialog, even with valid credentials.
func TestInDialogRequestsNeedTLSAndTheirConnection(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{})
	alice := e.user("alice")
	alice.mustJoin(m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	addUser := func(u *member, transport, dest string) *sip.Response {
		req := alice.inDialog(sip.INFO)
		req.AppendHeader(sip.NewHeader("Content-Type", ControlType))
		req.SetBody((&ControlRequest{ID: "x", AddUser: &AddUser{}}).Marshal())
		req.SetTransport(transport)
		req.SetDestination(dest)
		res, err := u.do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Over UDP, with alice's password: refused, no token.
	if res := addUser(alice, "UDP", e.udpAddr); res.StatusCode != 403 || len(res.Body()) > 0 {
		t.Fatalf("add-user over UDP: %v", res)
	}
	// From alice's second device, over its own TLS connection.
	other := e.user("alice")
	if res := addUser(other, "TLS", e.addr); res.StatusCode != 403 {
		t.Fatalf("add-user from another connection: %v", res)
	}
	reinvite := alice.inDialog(sip.INVITE)
	if res, err := other.do(ctx, reinvite); err != nil || res.StatusCode != 403 {
		t.Fatalf("re-INVITE from another connection: %v %v", res, err)
	}
	// On its own connection, it works.
	if code, cr := alice.control(&ControlRequest{ID: "y", AddUser: &AddUser{}}); code != 200 || cr.MediaGrant == nil {
		t.Fatalf("add-user: %d", code)
	}
}

// TestDialInThroughGateway: a trusted gateway brings a caller, who is a
// dial-in participant (anonymous, straight in by default once a leader is
// there); the gateway gets its media token and hangs up for it.
func TestDialInThroughGateway(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	e.user("alice").mustJoin(m)
	// The gateway signs as itself; the caller ID is in the display name.
	gw := e.member("", "", "sip:gateway@example.test", "+1 555 0100", e.pki.User(t, "sip:gateway@example.test"))
	gw.mustJoin(m)
	var caller Participant
	for _, p := range e.focus.Participants(m.ID) {
		if p.Type == DialIn {
			caller = p
		}
	}
	if caller.ID == "" || caller.State != Joined || caller.Role != Attendee || caller.DisplayName != "+1 555 0100" || caller.AOR != "" {
		t.Fatalf("dial-in caller %+v", caller)
	}
	if code, cr := gw.control(&ControlRequest{ID: "1", AddUser: &AddUser{}}); code != 200 || cr.MediaGrant == nil {
		t.Fatalf("add-user for the caller: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := gw.do(ctx, gw.inDialog(sip.BYE)); err != nil || res.StatusCode != 200 {
		t.Fatalf("gateway hangs up: %v %v", res, err)
	}
	if _, err := e.focus.Participant(m.ID, caller.ID); !errors.Is(err, ErrNoParticipant) {
		t.Fatalf("caller still in after the gateway's BYE: %v", err)
	}
}

// TestSubscriptionBindsToItsOwnDevice: two devices of one user, one in the
// meeting and one in the lobby; each subscription sees its own device's
// view.
func TestSubscriptionBindsToItsOwnDevice(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganizer, Presenter: PresentersOrganizer})
	alice := e.user("alice")
	alice.mustJoin(m)
	alice.subscribe(m)
	alice.notified(func(*ConferenceInfo) bool { return true })

	bob1 := e.user("bob")
	joined := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = bob1.join(ctx, m)
		close(joined)
	}()
	ci := alice.notified(func(ci *ConferenceInfo) bool { return endpoint(ci, "Bob", "pending") != "" })
	if code, _ := alice.control(&ControlRequest{ID: "1", Admit: &Target{Participant: endpoint(ci, "Bob", "pending")}}); code != 200 {
		t.Fatalf("admit: %d", code)
	}
	<-joined

	bob2 := e.user("bob")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = bob2.join(ctx, m)
	}()
	alice.notified(func(ci *ConferenceInfo) bool { return endpoint(ci, "Bob", "pending") != "" })

	bob1.subscribe(m)
	view := bob1.notified(func(*ConferenceInfo) bool { return true })
	if got := roster(view); strings.Contains(got, "pending") || !strings.Contains(got, "Bob:connected") {
		t.Fatalf("joined device's view %q", got)
	}
	bob2.subscribe(m)
	if got := roster(bob2.notified(func(*ConferenceInfo) bool { return true })); got != "Bob:pending:attendee" {
		t.Fatalf("lobby device's view %q", got)
	}
}

// TestCloseAnswersWaitingInvites: closing the Focus while an INVITE waits
// in the lobby answers it 503 (and does not crash).
func TestCloseAnswersWaitingInvites(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganizer})
	e.user("alice").mustJoin(m)
	bob := e.user("bob")
	bob.associate(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx := bob.inviteTx(ctx, m)
	defer tx.Terminate()
	if res := response(t, tx); res.StatusCode != 182 {
		t.Fatalf("lobby: %v", res)
	}
	if err := e.focus.Close(); err != nil {
		t.Fatal(err)
	}
	if res := response(t, tx); res.StatusCode != 503 {
		t.Fatalf("waiting INVITE after Close: %v", res)
	}
}
