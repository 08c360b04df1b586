package main

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pion/turn/v2"

	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
)

// relayCredentials fetches user's relay credentials from s over HTTPS,
// as a signed-in client does.
func relayCredentials(t testing.TB, s *server, user, password string) edge.Credential {
	t.Helper()
	res := digestDo(t, s.httpsClient(t), "GET", "https://"+s.listeners["https"]+"/relay/credentials", user, password, nil)
	defer res.Body.Close()
	var cred edge.Credential
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&cred) != nil {
		t.Fatalf("%s's relay credentials: %s", user, res.Status)
	}
	return cred
}

// turnAllocate allocates on s's TURN relay over UDP with cred, as pion's
// client does; the client and its allocation are closed when the test
// ends. It returns the client, the relayed connection and the
// Allocate's error.
func turnAllocate(t testing.TB, s *server, cred edge.Credential) (*turn.Client, net.PacketConn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tc, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: s.listeners["turn"], Conn: conn, Username: cred.Username,
		Password: cred.Password, Realm: "example.test", RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := tc.Allocate()
	if err == nil {
		t.Cleanup(func() { relayed.Close() })
	}
	return tc, relayed, err
}

// issueCertificate has s's admin API issue a client certificate for uri
// and returns it as a KeyPair, with its serial number (hexadecimal).
func issueCertificate(t testing.TB, s *server, uri string) (*pki.KeyPair, string) {
	t.Helper()
	var issued struct {
		Serial      string
		Certificate string
		PrivateKey  string `json:"private_key"`
	}
	s.admin(t).must("POST", "/certificates", `{"uri":"`+uri+`","days":30}`, http.StatusCreated, &issued)
	cert, err := tls.X509KeyPair([]byte(issued.Certificate), []byte(issued.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := pki.NewKeyPair(cert)
	if err != nil {
		t.Fatal(err)
	}
	return kp, issued.Serial
}

// turnsAllocate allocates on s's relay over TURN over TLS, with kp's
// client certificate on the TLS connection (nil: none), and returns that
// connection; the client and its allocation are closed when the test
// ends.
func turnsAllocate(t testing.TB, s *server, kp *pki.KeyPair, verifier *pki.Verifier, cred edge.Credential) (*tls.Conn, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", s.listeners["turns"], pki.ClientTLSConfig(kp, verifier, "localhost"))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	tc, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: s.listeners["turns"], Conn: turn.NewSTUNConn(conn),
		Username: cred.Username, Password: cred.Password, Realm: "example.test", RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := tc.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { relayed.Close() })
	return conn, nil
}
