package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/conference"
)

// A participant is refused before the bridge acts on its offer (no peer
// connection, so no ICE or DTLS) when its token is missing, expired,
// issued for another meeting or participant, bound to another DTLS
// certificate or tampered with, and when it is not in the meeting.
func TestJoinRefusedBeforeAnyDTLS(t *testing.T) {
	e := newEnv(t, time.Time{})
	org := e.enter("alice")
	other, err := e.focus.Schedule(context.Background(), identity("bob"), conference.MeetingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(change func(*conference.MediaClaims), ttl time.Duration) func(conference.MediaClaims) string {
		return func(c conference.MediaClaims) string { change(&c); return e.tokens.Issue(c, ttl) }
	}
	tests := []struct {
		name  string
		token func(conference.MediaClaims) string
	}{
		{"missing", func(conference.MediaClaims) string { return "" }},
		{"expired", issue(func(*conference.MediaClaims) {}, -time.Second)},
		{"for another meeting", issue(func(c *conference.MediaClaims) { c.Meeting = other.ID }, time.Minute)},
		{"for another participant", issue(func(c *conference.MediaClaims) { c.Participant = "someone-else" }, time.Minute)},
		{"bound to another certificate", issue(func(c *conference.MediaClaims) {
			c.Binding = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
		}, time.Minute)},
		{"tampered", func(c conference.MediaClaims) string {
			tok := []byte(e.tokens.Issue(c, time.Minute))
			tok[len(tok)-3] ^= 'A' ^ 'B'
			return string(tok)
		}},
		{"signed with another key", func(c conference.MediaClaims) string {
			stranger, _ := conference.NewTokenIssuer(nil, nil)
			return stranger.Issue(c, time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, offer, token := e.newClient(org, clientOptions{publish: []string{KindAudio}, tokenHook: tt.token})
			s, err := e.bridge.Join(context.Background(), JoinRequest{Meeting: e.meeting.ID, Participant: org.ID, Token: token, Offer: offer})
			if !errors.Is(err, ErrRefused) || s != nil {
				t.Fatalf("Join: %v, want ErrRefused", err)
			}
			if n := len(e.bridge.Participants(e.meeting.ID)); n != 0 {
				t.Fatalf("%d participants have media after a refusal", n)
			}
			c.close()
		})
	}

	// A valid token of someone who has since left the meeting.
	bob := e.enter("bob")
	c, offer, token := e.newClient(bob, clientOptions{publish: []string{KindAudio}})
	if err := e.focus.Leave(e.meeting.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bridge.Join(context.Background(), JoinRequest{Meeting: e.meeting.ID, Participant: bob.ID, Token: token, Offer: offer}); !errors.Is(err, ErrRefused) {
		t.Fatalf("a departed participant's token: %v, want ErrRefused", err)
	}
	c.close()
}

// Two publishers (audio and video each) and three listeners: every
// participant receives every track of the others, in sequence, and
// nothing of its own.
func TestForwardsEveryTrackToTheOthers(t *testing.T) {
	e := newEnv(t, time.Time{})
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	clients := make([]*client, len(users))
	pids := make([]string, len(users))
	for i, u := range users {
		p := e.enter(u)
		pids[i] = string(p.ID)
		o := clientOptions{}
		if i < 2 {
			o.publish = []string{KindAudio, KindVideo}
		}
		clients[i] = e.join(p, o)
	}
	const want = 50 // packets on each track, 1 s of media
	for i, c := range clients {
		var keys []string
		for j := range 2 {
			if j != i {
				keys = append(keys, pids[j]+"/"+pids[j]+"-audio", pids[j]+"/"+pids[j]+"-video")
			}
		}
		eventually(t, 15*time.Second, fmt.Sprintf("%s receives %d packets on each of %v", users[i], want, keys), func() bool {
			for _, k := range keys {
				if c.stats(k).packets < want {
					return false
				}
			}
			return true
		})
		for _, k := range keys {
			if s := c.stats(k); s.gaps != 0 || s.repeats != 0 {
				t.Errorf("%s on %s: %d packets, %d gaps, %d repeats; want none missing or repeated", users[i], k, s.packets, s.gaps, s.repeats)
			}
		}
		if i < 2 {
			if s := c.stats(pids[i] + "/" + pids[i] + "-audio"); s.packets != 0 {
				t.Errorf("%s received its own audio", users[i])
			}
		}
	}
}

// An ejected participant stops receiving within one second, and the
// others stop receiving it.
func TestEjectedParticipantStopsReceiving(t *testing.T) {
	e := newEnv(t, time.Time{})
	org := e.enter("alice")
	alice := e.join(org, clientOptions{publish: []string{KindAudio, KindVideo}})
	p := e.enter("bob")
	bob := e.join(p, clientOptions{publish: []string{KindAudio}})
	eventually(t, 10*time.Second, "bob receives alice", func() bool { return bob.total() > 20 })
	eventually(t, 10*time.Second, "alice receives bob", func() bool { return alice.stats(string(p.ID)+"/"+string(p.ID)+"-audio").packets > 20 })

	if err := e.focus.Eject(context.Background(), e.meeting.ID, org.ID, p.ID); err != nil {
		t.Fatal(err)
	}
	ejected := time.Now()
	time.Sleep(time.Second)
	atOneSecond := bob.total()
	time.Sleep(500 * time.Millisecond)
	if n := bob.total(); n != atOneSecond {
		t.Fatalf("bob received %d packets between 1 s and 1.5 s after his ejection", n-atOneSecond)
	}
	select {
	case <-bob.sess.Done():
	default:
		t.Fatalf("bob's session still open %v after his ejection", time.Since(ejected))
	}
	fromBob := alice.stats(string(string(p.ID) + "/" + string(p.ID) + "-audio")).packets
	time.Sleep(300 * time.Millisecond)
	if n := alice.stats(string(string(p.ID) + "/" + string(p.ID) + "-audio")).packets; n != fromBob {
		t.Fatalf("alice still receives the ejected bob (%d more packets)", n-fromBob)
	}
	if got := e.bridge.Participants(e.meeting.ID); len(got) != 1 || got[0] != org.ID {
		t.Fatalf("participants with media: %v, want alice's only", got)
	}
}

// Only presenters' screen share is forwarded: an attendee's is dropped.
func TestScreenShareOnlyFromPresenters(t *testing.T) {
	e := newEnv(t, time.Time{})
	org := e.enter("alice") // the organizer presents
	bobP := e.enter("bob")  // an attendee: PresentersOrganizer
	if bobP.Role != conference.Attendee {
		t.Fatalf("bob is %v, want an attendee", bobP.Role)
	}
	carolP := e.enter("carol")
	carol := e.join(carolP, clientOptions{})
	e.join(bobP, clientOptions{publish: []string{KindAudio, KindScreen}})
	e.join(org, clientOptions{publish: []string{KindScreen}})
	aliceScreen := string(org.ID) + "/" + string(org.ID) + "-screen"
	eventually(t, 10*time.Second, "carol receives alice's screen and bob's audio", func() bool {
		return carol.stats(string(aliceScreen)).packets > 20 && carol.stats(string(bobP.ID)+"/"+string(bobP.ID)+"-audio").packets > 20
	})
	if n := carol.stats(string(string(bobP.ID) + "/" + string(bobP.ID) + "-screen")).packets; n != 0 {
		t.Fatalf("carol received %d packets of the attendee bob's screen share", n)
	}
}

// A presenter demoted while sharing: the share stops reaching the others.
func TestDemotedPresenterShareStops(t *testing.T) {
	e := newEnv(t, time.Time{})
	org := e.enter("alice")
	bobP := e.enter("bob")
	if err := e.focus.Promote(context.Background(), e.meeting.ID, org.ID, bobP.ID); err != nil {
		t.Fatal(err)
	}
	carolP := e.enter("carol")
	carol := e.join(carolP, clientOptions{})
	bobP, _ = ptr(e.focus.Participant(e.meeting.ID, bobP.ID))
	e.join(bobP, clientOptions{publish: []string{KindScreen}})
	key := string(bobP.ID) + "/" + string(bobP.ID) + "-screen"
	eventually(t, 10*time.Second, "carol receives bob's screen share", func() bool { return carol.stats(string(key)).packets > 20 })
	if err := e.focus.Demote(context.Background(), e.meeting.ID, org.ID, bobP.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	n := carol.stats(string(key)).packets
	time.Sleep(500 * time.Millisecond)
	if m := carol.stats(string(key)).packets; m != n {
		t.Fatalf("carol still receives the demoted bob's screen share (%d more packets)", m-n)
	}
}

func ptr(p conference.Participant, err error) (*conference.Participant, error) { return &p, err }

// Every session ends when the meeting does.
func TestMeetingEndEndsMedia(t *testing.T) {
	e := newEnv(t, time.Now().Add(3*time.Second))
	org := e.enter("alice")
	alice := e.join(org, clientOptions{publish: []string{KindAudio}})
	select {
	case <-alice.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session outlived its meeting")
	}
	if n := len(e.bridge.Participants(e.meeting.ID)); n != 0 {
		t.Fatalf("%d participants with media after the meeting ended", n)
	}
}

// replayConn duplicates every SRTP packet a client sends, 40 ms later:
// an attacker on the path replaying captured packets.
type replayConn struct {
	net.PacketConn
	mu       sync.Mutex
	replayed int
	wg       sync.WaitGroup
}

func (c *replayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	// RTP (RFC 7983: first byte 128-191) but not RTCP (types 192-223).
	if len(p) > 12 && p[0] >= 128 && p[0] <= 191 && (p[1] < 192 || p[1] > 223) {
		captured := append([]byte(nil), p...)
		c.wg.Add(1)
		time.AfterFunc(40*time.Millisecond, func() {
			defer c.wg.Done()
			if _, err := c.PacketConn.WriteTo(captured, addr); err == nil {
				c.mu.Lock()
				c.replayed++
				c.mu.Unlock()
			}
		})
	}
	return n, err
}

// A captured SRTP packet sent again is dropped by the bridge: a listener
// whose own replay protection is off sees every packet once.
func TestSRTPReplayDropped(t *testing.T) {
	e := newEnv(t, time.Time{})
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	replay := &replayConn{PacketConn: udp}
	t.Cleanup(func() { replay.wg.Wait(); _ = udp.Close() })
	org := e.enter("alice")
	e.join(org, clientOptions{publish: []string{KindAudio}, udp: replay})
	bobP := e.enter("bob")
	bob := e.join(bobP, clientOptions{noReplay: true})
	key := string(org.ID) + "/" + string(org.ID) + "-audio"
	replayed := func() int { replay.mu.Lock(); defer replay.mu.Unlock(); return replay.replayed }
	eventually(t, 10*time.Second, "50 of alice's packets replayed and bob receiving", func() bool {
		return replayed() >= 50 && bob.stats(string(key)).packets >= 50
	})
	time.Sleep(100 * time.Millisecond) // the last replays arrive
	if s := bob.stats(string(key)); s.repeats != 0 {
		t.Fatalf("the bridge forwarded %d replayed packets (of %d replayed; %d received)", s.repeats, replayed(), s.packets)
	}
}

// When a leader mutes the audience, no attendee's audio is forwarded
// (their video is, and the leaders' audio); unmuting lets them be heard.
func TestMuteAllHoldsTheAudience(t *testing.T) {
	e := newEnv(t, time.Time{})
	org, bob := e.enter("alice"), e.enter("bob") // bob attends: only the organizer presents
	e.join(org, clientOptions{publish: []string{KindAudio}})
	e.join(bob, clientOptions{publish: []string{KindAudio, KindVideo}})
	carol := e.join(e.enter("carol"), clientOptions{})
	key := func(p *conference.Participant, kind string) string {
		return string(p.ID) + "/" + string(p.ID) + "-" + kind
	}
	for _, k := range []string{key(org, KindAudio), key(bob, KindAudio), key(bob, KindVideo)} {
		eventually(t, 5*time.Second, "carol receives "+k, func() bool { return carol.stats(k).packets >= 10 })
	}
	growth := func() map[string]int { // packets received in 400 ms, per track
		before := map[string]int{}
		for _, k := range []string{key(org, KindAudio), key(bob, KindAudio), key(bob, KindVideo)} {
			before[k] = carol.stats(k).packets
		}
		time.Sleep(400 * time.Millisecond)
		for k, n := range before {
			before[k] = carol.stats(k).packets - n
		}
		return before
	}

	if err := e.focus.MuteAll(context.Background(), e.meeting.ID, org.ID, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // packets already on their way
	g := growth()
	// The other tracks flow meanwhile (a few packets: a loaded machine
	// under -race sends fewer than the nominal 20).
	if g[key(bob, KindAudio)] != 0 || g[key(bob, KindVideo)] < 3 || g[key(org, KindAudio)] < 3 {
		t.Fatalf("audience muted: carol received %v in 400 ms; want none of bob's audio, his video and alice's audio", g)
	}
	if err := e.focus.MuteAll(context.Background(), e.meeting.ID, org.ID, false); err != nil {
		t.Fatal(err)
	}
	unmuted := carol.stats(key(bob, KindAudio)).packets
	eventually(t, 5*time.Second, "carol hears bob again", func() bool { return carol.stats(key(bob, KindAudio)).packets >= unmuted+10 })
}
