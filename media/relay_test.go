package media

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/edge"
)

// An external participant who can reach nothing but the A/V Edge (ICE
// restricted to relay candidates) joins through EdgeRelay with the
// credentials RelayCredentials gives a signed-in user, and media flows
// both ways through the relay.
func TestExternalParticipantThroughTheEdgeRelay(t *testing.T) {
	e := newEnv(t, time.Time{})
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	secrets := edge.NewSecrets(0, nil)
	relay, err := edge.NewEdgeRelay(edge.RelayConfig{Realm: "example.test", Secrets: secrets, UDP: []net.PacketConn{udp},
		RelayAddress: net.IPv4(127, 0, 0, 1), AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}) // the bridge is on loopback here
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	authn, err := auth.New(auth.Config{Directory: e.dir, Realm: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer authn.Close()
	creds, err := edge.NewRelayCredentials(edge.RelayCredentialsConfig{Secrets: secrets, Auth: authn,
		URIs: []string{"turn:" + udp.LocalAddr().String() + "?transport=udp"}})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := creds.For(identity("bob"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	org := e.enter("alice")
	alice := e.join(org, clientOptions{publish: []string{KindAudio, KindVideo}})
	remote := e.enter("bob")
	bob := e.join(remote, clientOptions{publish: []string{KindAudio, KindVideo},
		relay: []webrtc.ICEServer{{URLs: cred.URIs, Username: cred.Username, Credential: cred.Password}}})
	for _, kind := range []string{KindAudio, KindVideo} {
		eventually(t, 10*time.Second, "bob receives alice's "+kind+" through the relay", func() bool {
			return bob.stats(string(org.ID)+"/"+string(org.ID)+"-"+kind).packets >= 20
		})
		eventually(t, 5*time.Second, "alice receives bob's "+kind, func() bool {
			return alice.stats(string(remote.ID)+"/"+string(remote.ID)+"-"+kind).packets >= 20
		})
	}
	pair, err := bob.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Typ != webrtc.ICECandidateTypeRelay {
		t.Fatalf("bob's selected candidate pair %v (%v), want a relay candidate", pair, err)
	}
	if m := relay.Metrics(); m.Allocations == 0 || m.BytesToPeers < 10_000 || m.BytesFromPeers < 10_000 {
		t.Fatalf("relay metrics %+v: the media did not go through it", m)
	}
}
