package conference

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

var sipPasswords = map[string]string{"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}

// sipEnv is a SIP server over TLS on loopback with a Focus and the
// Authenticator, as an application wires them.
type sipEnv struct {
	*focusEnv
	addr     string // SIP over TLS
	udpAddr  string // SIP over UDP, which the focus must refuse
	verifier *pki.Verifier
	pki      *testpki.PKI
}

func newSIPEnv(t testing.TB, opts ...func(*FocusConfig)) *sipEnv {
	t.Helper()
	p := testpki.New(t)
	kp := p.Server(t, "sip.example.test")
	dir := testDirectory(t)
	// A PSTN gateway, known by its client certificate.
	if err := dir.PutUser(auth.User{URI: "sip:gateway@example.test", DisplayName: "PSTN gateway", Tenant: "example.test", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	for user, pw := range sipPasswords {
		u, _ := dir.User(context.Background(), "sip:"+user+"@example.test")
		h := sha256.Sum256([]byte(user + ":example.test:" + pw))
		u.Credentials.HA1SHA256 = hex.EncodeToString(h[:])
		if err := dir.PutUser(*u); err != nil {
			t.Fatal(err)
		}
	}
	c := newClock()
	tokens, _ := NewTokenIssuer(nil, c.now)
	store := NewMemoryMeetings()
	th, _ := auth.NewThrottle(auth.ThrottleConfig{PerAddress: auth.Limit{Rate: 1e6, Burst: 1e6}, PerSubnet: auth.Limit{Rate: 1e6, Burst: 1e6}})
	authn, err := auth.New(auth.Config{Directory: dir, Realm: "example.test", Throttle: th, Conferences: Keys(store, c.now), DisableMD5: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = authn.Close() })

	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("parley-test"))
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := FocusConfig{Meetings: store, Directory: dir, Tokens: tokens, MediaServer: "media.example.test:3478",
		JoinURL: "https://meet.example.test", Now: c.now, Auth: authn, Client: client, Connections: ua.TransportLayer(),
		Listeners: map[string]string{"TLS": ln.Addr().String()}, Gateways: []string{"sip:gateway@example.test"}}
	for _, o := range opts {
		o(&cfg)
	}
	f, err := NewFocus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	notFound := func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 404, "Not Found", nil))
	}
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.INFO, sip.SUBSCRIBE, sip.MESSAGE} {
		srv.OnRequest(m, f.Dispatch(notFound))
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeTLS(authn.Listener(tls.NewListener(ln, pki.ServerTLSConfig(kp, p.Verifier))))
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		_ = srv.ServeUDP(udp)
	}()
	t.Cleanup(func() {
		_ = f.Close()
		_ = ln.Close()
		_ = udp.Close()
		_ = client.Close()
		_ = ua.Close()
		<-done
		<-done
	})
	return &sipEnv{focusEnv: &focusEnv{t: t, focus: f, tokens: tokens, clock: c, store: store}, addr: ln.Addr().String(),
		udpAddr: udp.LocalAddr().String(), verifier: p.Verifier, pki: p}
}

// member is a SIP client in a meeting: one TLS connection, on which it
// joins, controls, subscribes and receives NOTIFYs and BYEs.
type member struct {
	t              testing.TB
	env            *sipEnv
	user, password string // Digest credentials
	from           string // From address
	display        string
	ua             *sipgo.UserAgent
	client         *sipgo.Client
	notifies, byes chan *sip.Request
	messages       chan *sip.Request // the focus's MESSAGEs (the meeting's chat)
	invite         *sip.Request      // the INVITE that joined, and its 2xx
	joined         *sip.Response
	cseq           uint32
	state          ConferenceInfo // the conference state its NOTIFYs carried
	// stall, when set before a BYE arrives, holds the BYE's answer until
	// it is closed.
	stall chan struct{}
}

func (e *sipEnv) member(user, password, from, display string, cert ...*pki.KeyPair) *member {
	e.t.Helper()
	var kp *pki.KeyPair
	if len(cert) > 0 {
		kp = cert[0]
	}
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("member-"+user),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(kp, e.verifier, "sip.example.test")))
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua)
	m := &member{t: e.t, env: e, user: user, password: password, from: from, display: display, ua: ua, client: client,
		notifies: make(chan *sip.Request, 64), byes: make(chan *sip.Request, 4), messages: make(chan *sip.Request, 64), cseq: 100}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		m.notifies <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		m.messages <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		m.byes <- req
		if m.stall != nil {
			<-m.stall
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	e.t.Cleanup(func() {
		_ = client.Close()
		_ = ua.Close()
	})
	return m
}

func (e *sipEnv) user(name string) *member {
	return e.member(name, sipPasswords[name], "sip:"+name+"@example.test", name)
}

// guest is an anonymous user with the meeting's conference key.
func (e *sipEnv) guest(m *Meeting, name string) *member {
	return e.member(auth.AnonymousPrefix+string(m.ID), m.Key, "sip:"+strings.ReplaceAll(strings.ToLower(name), " ", "")+"@anonymous.invalid", name)
}

func (u *member) request(method sip.RequestMethod, target string, headers ...sip.Header) *sip.Request {
	var uri sip.Uri
	if err := sip.ParseUri(target, &uri); err != nil {
		u.t.Fatal(err)
	}
	req := sip.NewRequest(method, uri)
	var from sip.Uri
	_ = sip.ParseUri(u.from, &from)
	params := sip.NewParams()
	params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(&sip.FromHeader{DisplayName: u.display, Address: from, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: uri})
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+sip.GenerateTagN(6)+"@127.0.0.1;transport=tls>"))
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetTransport("TLS")
	req.SetDestination(u.env.addr)
	return req
}

// do sends req, answering a Digest challenge.
func (u *member) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := u.client.Do(ctx, req)
	if err == nil && res != nil && res.StatusCode == 401 {
		res, err = u.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.user, Password: u.password})
	}
	if err == nil && res == nil {
		err = errors.New("transaction ended without a response") // sipgo, when the connection closes
	}
	return res, err
}

// join INVITEs the focus and returns the final response.
func (u *member) join(ctx context.Context, m *Meeting) (*sip.Response, error) {
	req := u.request(sip.INVITE, m.Focus())
	u.invite = req
	res, err := u.do(ctx, req)
	if err == nil && res.StatusCode == 200 {
		u.joined = res
		// ACK the 2xx (RFC 3261 section 13.2.2.4): same CSeq number.
		ack := u.inDialog(sip.ACK)
		ack.CSeq().SeqNo = req.CSeq().SeqNo
		u.cseq--
		_ = u.client.WriteRequest(ack)
	}
	return res, err
}

func (u *member) mustJoin(m *Meeting) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.join(ctx, m)
	if err != nil || res.StatusCode != 200 {
		u.t.Fatalf("%s joins: %v %v", u.from, res, err)
	}
}

// inDialog builds a request in the joined INVITE dialog.
func (u *member) inDialog(method sip.RequestMethod) *sip.Request {
	contact := u.joined.Contact()
	if contact == nil {
		u.t.Fatal("no focus Contact in the 200")
	}
	req := sip.NewRequest(method, *contact.Address.Clone())
	req.AppendHeader(u.invite.From())
	req.AppendHeader(u.joined.To())
	req.AppendHeader(u.invite.CallID())
	u.cseq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: u.cseq, MethodName: method})
	req.SetTransport("TLS")
	req.SetDestination(u.env.addr)
	return req
}

// control sends a control request in the dialog and returns the SIP
// status and the parsed response.
func (u *member) control(r *ControlRequest) (int, *ControlResponse) {
	u.t.Helper()
	req := u.inDialog(sip.INFO)
	req.AppendHeader(sip.NewHeader("Content-Type", ControlType))
	req.SetBody(r.Marshal())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.do(ctx, req)
	if err != nil {
		u.t.Fatal(err)
	}
	cr, err := ParseControlResponse(res.Body())
	if err != nil {
		u.t.Fatalf("control response %d: %v", res.StatusCode, err)
	}
	return res.StatusCode, cr
}

// subscribe subscribes to the meeting's conference state.
func (u *member) subscribe(m *Meeting) {
	u.t.Helper()
	req := u.request(sip.SUBSCRIBE, m.Focus(), sip.NewHeader("Event", "conference"), sip.NewHeader("Accept", ConferenceInfoType))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		u.t.Fatalf("SUBSCRIBE: %v %v", res, err)
	}
}

// notified waits for a NOTIFY whose conference-info satisfies ok.
func (u *member) notified(ok func(*ConferenceInfo) bool) *ConferenceInfo {
	u.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case n := <-u.notifies:
			if ct := n.ContentType(); ct == nil || ct.Value() != ConferenceInfoType {
				continue
			}
			ci, err := ParseConferenceInfo(n.Body())
			if err != nil {
				u.t.Fatal(err)
			}
			if err := u.state.Apply(ci); err != nil {
				u.t.Fatal(err)
			}
			if ok(&u.state) {
				return &u.state
			}
		case <-deadline:
			u.t.Fatalf("%s: no matching conference NOTIFY", u.from)
			return nil
		}
	}
}

// endpoint finds the participant ID of the endpoint named name.
func endpoint(ci *ConferenceInfo, name, status string) string {
	for _, u := range ci.Users.User {
		for _, ep := range u.Endpoints {
			if u.DisplayText == name && ep.Status == status {
				return string(ep.ParticipantID())
			}
		}
	}
	return ""
}

// TestMeetingOverSIP is the meeting join of the security model over real
// SIP/TLS: the organizer schedules and joins; an anonymous user joins with
// the conference key, waits in the lobby, the organizer is notified and
// admits it, and it gets a media token; a second anonymous user times out.
func TestMeetingOverSIP(t *testing.T) {
	e := newSIPEnv(t, func(c *FocusConfig) { c.Lobby = mustLobby(t, LobbyConfig{Timeout: 1500 * time.Millisecond}) })
	m := e.schedule(MeetingOptions{Subject: "Launch", Access: AccessOrganization})

	alice := e.user("alice")
	alice.mustJoin(m)
	alice.subscribe(m)
	alice.notified(func(ci *ConferenceInfo) bool { return endpoint(ci, "Alice", "connected") != "" })

	guest := e.guest(m, "Guest One")
	type result struct {
		res *sip.Response
		err error
	}
	joined := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := guest.join(ctx, m)
		joined <- result{res, err}
	}()
	// The organizer is notified of the guest in the lobby.
	ci := alice.notified(func(ci *ConferenceInfo) bool { return endpoint(ci, "Guest One", "pending") != "" })
	guestID := endpoint(ci, "Guest One", "pending")
	select {
	case r := <-joined:
		t.Fatalf("the guest got a final response before admission: %v %v", r.res, r.err)
	default:
	}

	// A wrong key does not get into the lobby at all (add-user from the
	// lobby is refused: TestLobbyEarlyDialog).
	intruder := e.member(auth.AnonymousPrefix+string(m.ID), "not-the-key", "sip:x@anonymous.invalid", "X")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := intruder.join(ctx, m); err != nil || res.StatusCode != 401 && res.StatusCode != 403 {
		t.Fatalf("wrong conference key: %v %v", res, err)
	}

	if code, _ := alice.control(&ControlRequest{ID: "a1", Admit: &Target{Participant: guestID}}); code != 200 {
		t.Fatalf("admit: %d", code)
	}
	r := <-joined
	if r.err != nil || r.res.StatusCode != 200 {
		t.Fatalf("admitted guest: %v %v", r.res, r.err)
	}
	if c := r.res.Contact(); c == nil || !c.Params.Has("isfocus") || c.Address.User != string(m.ID) {
		t.Fatalf("focus Contact %v", c)
	}
	code, cr := guest.control(&ControlRequest{ID: "g1", AddUser: &AddUser{}})
	if code != 200 || cr.MediaGrant == nil || cr.ID != "g1" {
		t.Fatalf("add-user: %d %+v", code, cr)
	}
	claims, err := e.tokens.Verify(cr.MediaGrant.Token, MediaClaims{Meeting: m.ID, Participant: ParticipantID(guestID)})
	if err != nil {
		t.Fatalf("the guest's media token: %v", err)
	}
	if claims.Role != "attendee" || cr.MediaGrant.Server != "media.example.test:3478" {
		t.Fatalf("grant %+v claims %+v", cr.MediaGrant, claims)
	}
	// The guest is an attendee: it controls nothing.
	aliceID := endpoint(alice.notified(func(ci *ConferenceInfo) bool { return endpoint(ci, "Guest One", "connected") != "" }), "Alice", "connected")
	if code, _ := guest.control(&ControlRequest{ID: "g2", Eject: &Target{Participant: aliceID}}); code != 403 {
		t.Fatalf("attendee ejects the organizer: %d", code)
	}
	if code, _ := guest.control(&ControlRequest{ID: "g3", Promote: &Target{Participant: guestID}}); code != 403 {
		t.Fatalf("attendee promotes itself: %d", code)
	}

	// A second guest waits, nobody admits it, and the wait times out.
	late := e.guest(m, "Guest Two")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	start := time.Now()
	res, err := late.join(ctx2, m)
	if err != nil || res.StatusCode != 480 {
		t.Fatalf("lobby timeout: %v %v", res, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("lobby timed out after %v", d)
	}

	// The organizer ejects the first guest: its dialog ends with a BYE.
	if code, _ := alice.control(&ControlRequest{ID: "a2", Eject: &Target{Participant: guestID}}); code != 200 {
		t.Fatalf("eject: %d", code)
	}
	select {
	case <-guest.byes:
	case <-time.After(5 * time.Second):
		t.Fatal("ejected guest got no BYE")
	}
	if _, err := e.focus.Participant(m.ID, ParticipantID(guestID)); !errors.Is(err, ErrNoParticipant) {
		t.Fatalf("ejected guest still in: %v", err)
	}

	// The organizer leaves: its subscription ends with a last NOTIFY.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel3()
	if res, err := alice.do(ctx3, alice.inDialog(sip.BYE)); err != nil || res.StatusCode != 200 {
		t.Fatalf("BYE: %v %v", res, err)
	}
	for deadline := time.After(5 * time.Second); ; {
		select {
		case n := <-alice.notifies:
			if h := n.GetHeader("Subscription-State"); h != nil && strings.HasPrefix(h.Value(), "terminated") {
				return
			}
		case <-deadline:
			t.Fatal("no terminating NOTIFY after the organizer left")
		}
	}
}

func TestFocusRefusals(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	alice := e.user("alice")

	// An unknown meeting.
	other := *m
	other.ID = MeetingID(randomToken())
	if res, err := alice.join(ctx, &other); err != nil || res.StatusCode != 404 {
		t.Fatalf("unknown meeting: %v %v", res, err)
	}
	// Media in the INVITE: refused, media goes through add-user.
	req := alice.request(sip.INVITE, m.Focus(), sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte("v=0\r\n"))
	if res, err := alice.do(ctx, req); err != nil || res.StatusCode != 488 {
		t.Fatalf("INVITE with SDP: %v %v", res, err)
	}
	// Another event package.
	req = alice.request(sip.SUBSCRIBE, m.Focus(), sip.NewHeader("Event", "presence"))
	if res, err := alice.do(ctx, req); err != nil || res.StatusCode != 489 {
		t.Fatalf("SUBSCRIBE presence: %v %v", res, err)
	}
	alice.mustJoin(m)
	// Conference state only for participants.
	bob := e.user("bob")
	req = bob.request(sip.SUBSCRIBE, m.Focus(), sip.NewHeader("Event", "conference"))
	if res, err := bob.do(ctx, req); err != nil || res.StatusCode != 403 {
		t.Fatalf("SUBSCRIBE by a non-participant: %v %v", res, err)
	}
	// A malformed control request.
	info := alice.inDialog(sip.INFO)
	info.AppendHeader(sip.NewHeader("Content-Type", ControlType))
	info.SetBody([]byte("<request"))
	if res, err := alice.do(ctx, info); err != nil || res.StatusCode != 400 {
		t.Fatalf("malformed control: %v %v", res, err)
	}
	info = alice.inDialog(sip.INFO)
	info.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	if res, err := alice.do(ctx, info); err != nil || res.StatusCode != 415 {
		t.Fatalf("control as text/plain: %v %v", res, err)
	}
	// Someone else's dialog: bob, on his own connection, with alice's
	// dialog identifiers.
	bye := alice.inDialog(sip.BYE)
	bye.SetDestination(e.addr)
	bye.RemoveHeader("From")
	from := *alice.invite.From()
	from.Address.User = "bob"
	bye.AppendHeader(&from)
	if res, err := bob.do(ctx, bye); err != nil || res.StatusCode != 403 {
		t.Fatalf("bob ends alice's dialog: %v %v", res, err)
	}
	// Leaving: BYE from alice.
	if res, err := alice.do(ctx, alice.inDialog(sip.BYE)); err != nil || res.StatusCode != 200 {
		t.Fatalf("BYE: %v %v", res, err)
	}
	if len(e.focus.Participants(m.ID)) != 0 {
		t.Fatal("alice still in after BYE")
	}
}

// TestHangUpLeavesTheMeeting: a participant whose connection closes is out
// of the meeting, lobby included.
func TestHangUpLeavesTheMeeting(t *testing.T) {
	e := newSIPEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganizer})
	e.user("alice").mustJoin(m)
	bob := e.user("bob")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = bob.join(ctx, m)
	}()
	waitFor(t, func() bool { return len(e.focus.Participants(m.ID)) == 2 })
	_ = bob.client.Close()
	_ = bob.ua.Close()
	waitFor(t, func() bool { return len(e.focus.Participants(m.ID)) == 1 })

	// A joined participant whose connection drops leaves too: the Focus
	// registered itself with the Authenticator for closed connections.
	if err := e.focus.Lock(context.Background(), m.ID, e.focus.Participants(m.ID)[0].ID, false); err != nil {
		t.Fatal(err)
	}
	if err := e.focus.SetAccess(context.Background(), m.ID, e.focus.Participants(m.ID)[0].ID, AccessOrganization, false); err != nil {
		t.Fatal(err)
	}
	carol := e.user("carol")
	carol.mustJoin(m)
	waitFor(t, func() bool { return len(e.focus.Participants(m.ID)) == 2 })
	_ = carol.client.Close()
	_ = carol.ua.Close()
	waitFor(t, func() bool { return len(e.focus.Participants(m.ID)) == 1 })
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not reached in 5 s")
}
