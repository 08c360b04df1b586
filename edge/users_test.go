package edge

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/dnstest"
	"github.com/parleyuc/parley/internal/testpki"
)

// onlyEdgeVia fails the test unless m carries one Via, the edge's: the
// device learns nothing of the inside's hosts.
func onlyEdgeVia(t *testing.T, m *sip.Request, internal string) {
	t.Helper()
	vias := m.GetHeaders("Via")
	if len(vias) != 1 || strings.Contains(m.String(), internal) {
		t.Errorf("a request through the edge shows %d Vias, or the internal server %s:\n%s", len(vias), internal, m)
	}
}

// TestRemoteUserThroughTheEdge: a tenant's user outside the network
// registers through the Access Edge's user listener, and messages and
// presence flow both ways with a colleague signed in inside; the inside's
// addresses do not reach the device; once the device's connection to the
// edge is gone, requests for it fail at once.
func TestRemoteUserThroughTheEdge(t *testing.T) {
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", testpki.New(t))
	alice := a.phoneAt("alice", a.userEdge) // registers through the edge
	bob := a.phone("bob")

	if res := bob.message("sip:alice@a.test", "to the road warrior"); res.StatusCode != 200 {
		t.Fatalf("bob to remote alice: %v", res)
	}
	m := received(t, alice.inbox, "MESSAGE at remote alice")
	if string(m.Body()) != "to the road warrior" || m.GetHeader("P-Asserted-Identity") == nil ||
		!strings.Contains(m.GetHeader("P-Asserted-Identity").Value(), "sip:bob@a.test") {
		t.Fatalf("alice got:\n%s", m)
	}
	_, internalPort, _ := net.SplitHostPort(a.internal)
	onlyEdgeVia(t, m, ":"+internalPort)

	if res := alice.message("sip:bob@a.test", "from the road"); res.StatusCode != 200 {
		t.Fatalf("remote alice to bob: %v", res)
	}
	m = received(t, bob.inbox, "MESSAGE at bob")
	if string(m.Body()) != "from the road" || !strings.Contains(m.GetHeader("P-Asserted-Identity").Value(), "sip:alice@a.test") {
		t.Fatalf("bob got:\n%s", m)
	}

	// Presence: alice watches bob through the edge; the NOTIFYs of the
	// subscription's dialog come back through it.
	sub := alice.request(sip.SUBSCRIBE, "sip:bob@a.test", sip.NewHeader("Event", "presence"),
		sip.NewHeader("Accept", "application/pidf+xml"), sip.NewHeader("Expires", "600"))
	if res := alice.do(sub); res.StatusCode != 200 {
		t.Fatalf("alice watches bob through the edge: %v", res)
	}
	n := received(t, alice.notifies, "NOTIFY through the edge")
	if !strings.Contains(string(n.Body()), "<basic>open</basic>") {
		t.Fatalf("alice sees bob:\n%s", n.Body())
	}
	onlyEdgeVia(t, n, ":"+internalPort)

	// Alice's device drops its connection to the edge: the edge answers
	// for it (430 Flow Failed) and bob's message fails rather than hangs.
	alice.client.Close()
	_ = alice.client.UserAgent.Close()
	time.Sleep(200 * time.Millisecond)
	if res := bob.message("sip:alice@a.test", "gone?"); res.StatusCode < 400 {
		t.Errorf("a message to a device whose edge connection is gone: %v", res)
	}
}

// TestGuestJoinsAMeetingThroughTheEdge: an anonymous guest with a
// meeting's conference key joins it through the Access Edge, gets a
// media token and leaves, every request through the edge; a tenant's
// remote user is a remote user inside; what guests and impostors try
// beyond that is refused.
func TestGuestJoinsAMeetingThroughTheEdge(t *testing.T) {
	s := newSite(t)
	m, guest, c := s.guestInMeeting(t)
	if rr := c.ok.GetHeaders("Record-Route"); len(rr) != 1 || !strings.Contains(rr[0].Value(), s.userEdge) {
		t.Fatalf("Record-Route %v: the edge's user address stays in the dialog", rr)
	}
	if ct := c.ok.Contact(); ct == nil || !strings.Contains(ct.Address.String(), s.userEdge) || strings.Contains(c.ok.String(), s.internal) {
		t.Fatalf("the 200 shows the inside:\n%s", c.ok)
	}
	var visitor conference.Participant
	for _, p := range s.focus.Participants(m.ID) {
		if p.DisplayName == "Visitor" {
			visitor = p
		}
	}
	if visitor.Type != conference.Anonymous || visitor.State != conference.Joined {
		t.Fatalf("the guest is %+v", visitor)
	}
	// Another guest, on its own connection, cannot act in the first one's
	// dialog: not with its route (bound to the first guest's connection),
	// nor without.
	other := s.peer(s.userEdge, "edge.example.test", nil)
	other.user, other.pass = auth.AnonymousPrefix+string(m.ID), m.Key
	bye := other.inDialog(c, sip.BYE)
	if res := other.do(bye, 5*time.Second); res.StatusCode != 403 {
		t.Errorf("another guest's BYE along the first guest's route: %v", res)
	}
	var focusURI sip.Uri
	_ = sip.ParseUri(m.Focus(), &focusURI)
	bye = sip.NewRequest(sip.BYE, focusURI) // the dialog's, straight to the focus, without its route
	bye.AppendHeader(c.invite.From())
	bye.AppendHeader(c.ok.To())
	bye.AppendHeader(c.invite.CallID())
	bye.AppendHeader(&sip.CSeqHeader{SeqNo: 99, MethodName: sip.BYE})
	bye.SetTransport("TLS")
	bye.SetDestination(other.dest)
	if res := other.do(bye, 5*time.Second); res.StatusCode != 403 {
		t.Errorf("another guest's BYE in the first guest's dialog, without its route: %v", res)
	}
	// It joins as a participant of its own.
	other.join(m.Focus(), "sip:visitor@anonymous.invalid", "Visitor", 10*time.Second)
	if n := len(s.focus.Participants(m.ID)); n != 3 {
		t.Fatalf("%d participants with two guests of the same From on two connections, want 3", n)
	}

	code, cr := guest.control(c, &conference.ControlRequest{ID: "g1", AddUser: &conference.AddUser{}})
	if code != 200 || cr == nil || cr.MediaGrant == nil {
		t.Fatalf("add-user through the edge: %d %+v", code, cr)
	}
	if res := guest.do(guest.inDialog(c, sip.BYE), 5*time.Second); res.StatusCode != 200 {
		t.Fatalf("BYE through the edge: %v", res)
	}
	if n := len(s.focus.Participants(m.ID)); n != 2 {
		t.Fatalf("%d participants after the first guest left, want 2", n)
	}

	// A guest reaches meetings and nothing else.
	for _, tc := range []struct {
		name   string
		method sip.RequestMethod
		target string
		want   int
	}{
		{"a MESSAGE to a user", sip.MESSAGE, "sip:alice@example.test", 403},
		{"a MESSAGE to the meeting", sip.MESSAGE, m.Focus(), 403},
		{"a call to a user", sip.INVITE, "sip:alice@example.test", 403},
		{"a made-up meeting", sip.INVITE, "sip:aaaaaaaaaaaaaaaaaaaaaaaaaa@example.test", 403},
		{"a registration", sip.REGISTER, "sip:example.test", 403},
		{"another domain", sip.INVITE, string("sip:" + m.ID + "@elsewhere.test"), 404},
	} {
		res := guest.do(guest.request(tc.method, tc.target, "sip:visitor@anonymous.invalid", "Visitor"), 5*time.Second)
		if res.StatusCode != tc.want || (tc.want == 403 && res.Reason != "Anonymous users may only join meetings") {
			t.Errorf("guest, %s: %v, want %d from the edge", tc.name, res, tc.want)
		}
	}

	// Alice on the road: a remote user inside, whatever she asserts.
	road := s.peer(s.userEdge, "edge.example.test", nil)
	road.user, road.pass = "alice", "alice-secret"
	req := road.request(sip.MESSAGE, "sip:alice@example.test", "sip:alice@example.test", "", sip.NewHeader("P-Asserted-Identity", "<sip:ceo@example.test>"))
	if res := road.do(req, 5*time.Second); res.StatusCode != 200 || res.GetHeader("X-Identity") == nil || res.GetHeader("X-Identity").Value() != "remote sip:alice@example.test" {
		t.Errorf("remote alice's MESSAGE: %v", res)
	}
	// An impostor with alice's name but not her password gets nothing.
	impostor := s.peer(s.userEdge, "edge.example.test", nil)
	impostor.user, impostor.pass = "alice", "guess"
	if res := impostor.do(impostor.request(sip.MESSAGE, "sip:alice@example.test", "sip:alice@example.test", ""), 5*time.Second); res.StatusCode == 200 {
		t.Errorf("a wrong password through the edge: %v", res)
	}
}

// TestRemoteUsersDialogRoutesThroughTheInside: bob, inside, subscribes to
// remote alice's dialog state; the internal Router Record-Routes the
// SUBSCRIBE, but alice's device sees only the edge's entry. Her NOTIFY in
// the dialog, routed by that entry alone, still reaches bob through the
// Router: the edge put the Router's route back.
func TestRemoteUsersDialogRoutesThroughTheInside(t *testing.T) {
	dns := dnstest.Start(t)
	a := newDeployment(t, dns, "a.test", "127.0.0.2", testpki.New(t))
	alice, subs, _ := remoteDevice(t, a, "alice")
	bob := a.phone("bob")
	subscribed := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, _ := bob.client.Do(ctx, bob.request(sip.SUBSCRIBE, "sip:alice@a.test", sip.NewHeader("Event", "dialog"), sip.NewHeader("Expires", "600")))
		subscribed <- res
	}()
	sub := received(t, subs, "SUBSCRIBE at remote alice")
	rr := sub.GetHeaders("Record-Route")
	if len(rr) != 1 || !strings.Contains(rr[0].Value(), strings.TrimPrefix(a.userEdge, "edge.a.test")) {
		t.Fatalf("the device's Record-Route %v: only the edge's entry", rr)
	}
	if res := <-subscribed; res == nil || res.StatusCode != 200 {
		t.Fatalf("bob's SUBSCRIBE: %v", res)
	}

	notify := sip.NewRequest(sip.NOTIFY, *sub.Contact().Address.Clone())
	fromParams := sip.NewParams()
	fromParams.Add("tag", remoteDeviceTag)
	notify.AppendHeader(&sip.FromHeader{Address: sub.To().Address, Params: fromParams})
	notify.AppendHeader(&sip.ToHeader{Address: sub.From().Address, Params: sub.From().Params})
	notify.AppendHeader(sub.CallID())
	notify.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	notify.AppendHeader(sip.NewHeader("Event", "dialog"))
	notify.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=600"))
	notify.AppendHeader(sip.NewHeader("Contact", "<sip:alice-dev@"+a.ip+";transport=tls>"))
	for _, h := range rr {
		notify.AppendHeader(sip.NewHeader("Route", h.Value()))
	}
	notify.SetTransport("TLS")
	notify.SetDestination(a.userEdge)
	if res := alice.do(notify); res.StatusCode != 200 {
		t.Fatalf("alice's NOTIFY in the dialog: %v", res)
	}
	n := received(t, bob.notifies, "NOTIFY at bob")
	if n.CallID().Value() != sub.CallID().Value() {
		t.Fatalf("bob got another NOTIFY:\n%s", n)
	}
}

// guestInMeeting schedules a meeting open to anyone, has alice, its
// organizer, join it inside, and a guest with its conference key join it
// through the edge's user listener; it returns the meeting, the guest and
// the guest's call.
func (s *site) guestInMeeting(t *testing.T) (*conference.Meeting, *peer, *call) {
	t.Helper()
	alice := &auth.Identity{URI: "sip:alice@example.test", Tenant: "example.test", Kind: auth.Internal}
	m, err := s.focus.Schedule(context.Background(), alice, conference.MeetingOptions{Access: conference.AccessAnyone})
	if err != nil {
		t.Fatal(err)
	}
	org := s.peer(s.internal, "sip.example.test", nil)
	org.user, org.pass = "alice", "alice-secret"
	org.join(m.Focus(), "sip:alice@example.test", "Alice", 5*time.Second)
	guest := s.peer(s.userEdge, "edge.example.test", nil)
	guest.user, guest.pass = auth.AnonymousPrefix+string(m.ID), m.Key
	return m, guest, guest.join(m.Focus(), "sip:visitor@anonymous.invalid", "Visitor", 10*time.Second)
}
