package media

import (
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
)

// TestFirstOfferWaitsForTheConnection: a participant who joins while
// others publish gets the bridge's first offer (their tracks) only once
// its connection is up. An offer that reached the client while it was
// still starting its transports after the join answer was taken by
// pion's client for an ICE restart, and the connection sometimes failed
// (1 join in 350 with 50 at once). With the answer held back here, the
// window is as wide as a test can make it.
func TestFirstOfferWaitsForTheConnection(t *testing.T) {
	e := newEnv(t, time.Time{})
	pub := e.join(e.enter("alice"), clientOptions{publish: []string{KindAudio, KindVideo}})
	eventually(t, 10*time.Second, "alice connected", func() bool {
		return pub.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})

	bob := e.enter("bob")
	c, offer, token := e.newClient(bob, clientOptions{})
	s, err := e.bridge.Join(context.Background(), JoinRequest{Meeting: e.meeting.ID, Participant: bob.ID, Token: token, Offer: offer})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Offers():
		t.Fatal("the bridge offered alice's tracks before bob's connection was up")
	case <-time.After(500 * time.Millisecond):
	}

	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: s.Answer()}); err != nil {
		t.Fatal(err)
	}
	var next string
	select {
	case next = <-s.Offers():
	case <-time.After(10 * time.Second):
		t.Fatalf("no offer of alice's tracks within 10 s of bob's answer (connection %s)", c.pc.ConnectionState())
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: next}); err != nil {
		t.Fatal(err)
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := s.SetAnswer(c.pc.LocalDescription().SDP); err != nil {
		t.Fatal(err)
	}
	audio := string(pub.sess.Participant()) + "/" + string(pub.sess.Participant()) + "-audio"
	eventually(t, 10*time.Second, "bob receives alice's audio", func() bool { return c.stats(audio).packets >= 25 })
}
