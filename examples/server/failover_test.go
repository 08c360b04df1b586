package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/conference"
)

// meetingView is the admin API's view of a live meeting.
type meetingView struct {
	Host         string            `json:"host"`
	HostToken    uint64            `json:"host_token"`
	Participants []participantJSON `json:"participants"`
}

// participant returns uri's entry in the view, if there is one.
func (v meetingView) participant(uri string) (participantJSON, bool) {
	for _, p := range v.Participants {
		if p.URI == uri {
			return p, true
		}
	}
	return participantJSON{}, false
}

// awaitInView reads s's admin view of meeting id until uri is in it in
// state, and returns its entry.
func awaitInView(t *testing.T, s *server, id, uri, state string) participantJSON {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v meetingView
		s.admin(t).must("GET", "/meetings/"+id, "", 200, &v)
		if p, ok := v.participant(uri); ok && p.State == state {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never %s in the meeting: %+v", uri, state, v.Participants)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inviteWithin sends u's INVITE to focus and waits up to d for its final
// answer (a wait in the lobby has none); nil if none came.
func inviteWithin(u *sipUser, focus string, d time.Duration) (*sip.Request, *sip.Response) {
	req := u.request(sip.INVITE, focus, sip.NewHeader("Contact", "<sip:"+u.name+"-dev@127.0.0.1;transport=tls>"))
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res, err := u.client.Do(ctx, req)
	if err == nil && res.StatusCode == sip.StatusUnauthorized {
		res, err = u.client.DoDigestAuth(ctx, req, res, digestOf(u))
	}
	if err != nil {
		return req, nil
	}
	return req, res
}

// control sends a leader's control request in the meeting dialog that
// invite and ok made.
func control(t *testing.T, u *sipUser, invite *sip.Request, ok *sip.Response, cr *conference.ControlRequest) {
	t.Helper()
	info := inMeetingDialog(u, invite, ok, sip.INFO)
	info.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	info.SetBody(cr.Marshal())
	if res, err := u.do(info); err != nil || res.StatusCode != 200 {
		t.Fatalf("%s's control request %s: %v %v", u.name, cr.Op(), res, err)
	}
}

// TestFailoverKeepsAdmissionsAndRoles: two front ends, each its own
// process, on one redis-server. Alice organizes a meeting in which
// everyone else waits in the lobby; it is hosted by A, where she admits
// bob and carol from the lobby and makes carol a presenter. A is killed
// (-9). Everyone rejoins through B, which hosts the meeting next and
// rebuilds it from the store: bob and carol enter directly, not through
// the lobby again, and carol is still a presenter.
func TestFailoverKeepsAdmissionsAndRoles(t *testing.T) {
	_, fe, kill := startPool(t, 2)
	a, b := fe[0], fe[1]
	killA := kill[0]
	const carolPW = "correct horse battery"
	a.admin(t).must("POST", "/users", `{"uri":"sip:carol@example.test","display_name":"Carol","password":"`+carolPW+`","enabled":true}`, 201, nil)
	a.passwords["sip:carol@example.test"] = carolPW
	m := a.schedule(t, "alice", `{"access":"organizer","presenter":"organizer"}`)
	user := func(s *server, name string) *sipUser {
		return s.sipUser(t, name, a.passwords["sip:"+name+"@example.test"], "localhost")
	}

	alice := user(a, "alice")
	aliceInvite, aliceIn := inviteWithin(alice, m.Focus, 10*time.Second)
	if aliceIn == nil || aliceIn.StatusCode != 200 {
		t.Fatalf("alice joins through A: %v", aliceIn)
	}
	for i, name := range []string{"bob", "carol"} {
		joined := make(chan *sip.Response, 1)
		go func() { _, res := inviteWithin(user(a, name), m.Focus, 15*time.Second); joined <- res }()
		p := awaitInView(t, a, m.ID, "sip:"+name+"@example.test", "lobby")
		control(t, alice, aliceInvite, aliceIn, &conference.ControlRequest{ID: string(rune('1' + i)), Admit: &conference.Target{Participant: p.ID}})
		if res := <-joined; res == nil || res.StatusCode != 200 {
			t.Fatalf("%s admitted through A: %v", name, res)
		}
	}
	carol := awaitInView(t, a, m.ID, "sip:carol@example.test", "joined")
	control(t, alice, aliceInvite, aliceIn, &conference.ControlRequest{ID: "3", Promote: &conference.Target{Participant: carol.ID}})
	if p := awaitInView(t, a, m.ID, "sip:carol@example.test", "joined"); p.Role != "presenter" {
		t.Fatalf("carol after the promotion: %+v", p)
	}
	var onA meetingView
	a.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onA)

	killA()
	killed := time.Now()
	const bound = meetingLeaseTTL + 2*time.Second
	for { // alice's client rejoins through B until B hosts
		_, res := inviteWithin(user(b, "alice"), m.Focus, 10*time.Second)
		if res != nil && res.StatusCode == 200 {
			break
		}
		if res == nil || res.StatusCode != 302 && res.StatusCode != 503 || time.Since(killed) > bound {
			t.Fatalf("alice's INVITE through B %v after A died: %v", time.Since(killed), res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range []string{"bob", "carol"} {
		if _, res := inviteWithin(user(b, name), m.Focus, 5*time.Second); res == nil || res.StatusCode != 200 {
			var v meetingView
			b.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &v)
			p, _ := v.participant("sip:" + name + "@example.test")
			t.Fatalf("%s, admitted before A died, rejoins through B: %v (state %q); want 200, not the lobby", name, res, p.State)
		}
	}
	var onB meetingView
	b.admin(t).must("GET", "/meetings/"+m.ID, "", 200, &onB)
	if onB.Host != b.listeners["pool"] || onB.HostToken <= onA.HostToken {
		t.Fatalf("host after the failover: %s token %d; want %s with a token above %d", onB.Host, onB.HostToken, b.listeners["pool"], onA.HostToken)
	}
	for uri, role := range map[string]string{"sip:alice@example.test": "organizer", "sip:bob@example.test": "attendee", "sip:carol@example.test": "presenter"} {
		if p, ok := onB.participant(uri); !ok || p.State != "joined" || p.Role != role {
			t.Errorf("%s on B: %+v; want a joined %s", uri, p, role)
		}
	}
}

// TestAdminEndsMeetingAtTheHost: two front ends on one redis-server; alice
// is in a meeting hosted by A. The admin ends it through B, which does not
// host it: A ends the live meeting (alice's dialog gets a BYE, A hosts
// nothing more), not only the stored one.
func TestAdminEndsMeetingAtTheHost(t *testing.T) {
	_, fe, _ := startPool(t, 2)
	a, b := fe[0], fe[1]
	m := a.schedule(t, "alice", `{"access":"organization"}`)
	alice := a.sipUser(t, "alice", a.passwords["sip:alice@example.test"], "localhost")
	byes := make(chan struct{}, 1)
	alice.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		byes <- struct{}{}
	})
	if _, res := inviteWithin(alice, m.Focus, 10*time.Second); res == nil || res.StatusCode != 200 {
		t.Fatalf("alice joins through A: %v", res)
	}
	if h := metric(t, a, "parley_meetings_hosted"); h != 1 {
		t.Fatalf("A hosts %v meetings; want 1", h)
	}
	b.admin(t).must("DELETE", "/meetings/"+m.ID, "", 204, nil)
	select {
	case <-byes:
	case <-time.After(5 * time.Second):
		t.Fatalf("alice still in the meeting at A 5 s after the admin ended it through B: hosted %v", metric(t, a, "parley_meetings_hosted"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, a, "parley_meetings_hosted") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("A still hosts the ended meeting")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// digestOf is u's Digest credentials.
func digestOf(u *sipUser) sipgo.DigestAuth {
	user, _, _ := strings.Cut(u.name, "@")
	return sipgo.DigestAuth{Username: user, Password: u.password}
}
