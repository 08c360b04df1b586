package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/internal/testpki"
	"github.com/parleyuc/parley/pki"
)

// TestRelayCredentialsAndTURN: alice gets relay credentials over HTTPS and
// allocates on the server's TURN relay with them.
func TestRelayCredentialsAndTURN(t *testing.T) {
	s := startServer(t, t.TempDir())
	c := s.httpsClient(t)
	res := digestDo(t, c, "GET", "https://"+s.listeners["https"]+"/relay/credentials", "alice", s.passwords["sip:alice@example.test"], nil)
	defer res.Body.Close()
	var cred edge.Credential
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&cred) != nil || cred.TTL != 8*3600 || len(cred.URIs) != 3 {
		t.Fatalf("relay credentials: %s %+v", res.Status, cred)
	}
	_, relayConn, err := turnAllocate(t, s, cred)
	if err != nil {
		t.Fatalf("allocate with issued credentials: %v", err)
	}
	if port := relayConn.LocalAddr().(*net.UDPAddr).Port; port < 50000 || port > 59999 {
		t.Fatalf("relay port %d", port)
	}
}

// TestAccessEdgeTakesPartners: a partner server (certificate naming
// partner.test, from a CA the server trusts) sends a MESSAGE for alice
// through the Access Edge; it reaches the router as a federated request
// (alice is not signed in: 480); blocked, it would be refused at the edge.
func TestAccessEdgeTakesPartners(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	ca, err := pki.OpenCA(filepath.Join(data, "ca"), pki.CAConfig{CRLDistributionPoints: []string{"http://" + s.listeners["http"] + "/pki/ca.crl"}})
	if err != nil {
		t.Fatal(err)
	}
	partner := testpki.KeyPair(t)(ca.IssueServer(pki.ServerCertRequest{DNSNames: []string{"partner.test"}, ClientAuth: true}))
	ua, _ := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(partner, s.verifier(t), edgeName)))
	client, _ := sipgo.NewClient(ua)
	t.Cleanup(func() { _ = client.Close(); _ = ua.Close() })
	send := func(from string) *sip.Response {
		var to, f sip.Uri
		_ = sip.ParseUri("sip:alice@example.test", &to)
		_ = sip.ParseUri(from, &f)
		req := sip.NewRequest(sip.MESSAGE, to)
		params := sip.NewParams()
		params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(&sip.FromHeader{Address: f, Params: params})
		req.AppendHeader(&sip.ToHeader{Address: to})
		req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
		req.SetBody([]byte("hello from a partner"))
		req.SetTransport("TLS")
		req.SetDestination(s.listeners["edge"])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := client.Do(ctx, req)
		if err != nil || res == nil {
			t.Fatalf("MESSAGE through the edge: %v", err)
		}
		return res
	}
	if res := send("sip:pat@partner.test"); res.StatusCode != 480 {
		t.Fatalf("federated MESSAGE to alice, who is not signed in: %v", res)
	}
	if res := send("sip:quinn@other.test"); res.StatusCode != 403 {
		t.Fatalf("a domain the partner's certificate does not name: %v", res)
	}
}
