package presence

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

var registerSeeds = []string{
	"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:alice@127.0.0.1;transport=tls>;expires=600\r\nContent-Length: 0\r\n\r\n",
	"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK2\r\nMax-Forwards: 70\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: c1\r\nCSeq: 2 REGISTER\r\n" +
		"Contact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n",
	"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK3\r\nMax-Forwards: 70\r\n" +
		"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: c2\r\nCSeq: 1 REGISTER\r\n" +
		"Supported: outbound, path\r\nPath: <sip:edge.example.test;lr>\r\nExpires: 30\r\n" +
		"Contact: <sip:a@192.0.2.1>;+sip.instance=\"<urn:uuid:1>\";reg-id=1, <sip:a@192.0.2.2>;expires=0\r\nContent-Length: 0\r\n\r\n",
}

// FuzzRegister feeds arbitrary REGISTER requests from an authenticated
// user to the registrar: whatever parses must get one of the registrar's
// answers, and the bindings stay within bounds.
func FuzzRegister(f *testing.F) {
	for _, s := range registerSeeds {
		f.Add([]byte(s))
	}
	alice := &auth.Identity{URI: "sip:alice@example.test", Kind: auth.Internal, Method: auth.MethodDigest}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fresh registrar holding two of alice's devices, so each input
		// is judged on its own.
		reg, err := NewRegistrar(RegistrarConfig{Auth: noAuth{}, MaxBindings: 3})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		_ = reg.cfg.Store.Update(context.Background(), alice.URI, []Binding{
			{AOR: alice.URI, Contact: "sip:a@192.0.2.1", Expires: now.Add(time.Hour)},
			{AOR: alice.URI, Contact: "sip:a@192.0.2.2", Expires: now.Add(time.Hour)},
		}, nil, false)
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		req.SetSource("127.0.0.1:5999")
		req.SetTransport("TLS")
		res := reg.register(req, alice)
		switch res.StatusCode {
		case 200, 400, 403, 423, 500, 503:
		default:
			t.Fatalf("REGISTER answered %d", res.StatusCode)
		}
		bs, err := reg.Lookup(context.Background(), alice.URI)
		if err != nil || len(bs) > 3 {
			t.Fatalf("%d bindings (bound 3), %v", len(bs), err)
		}
		for _, b := range bs {
			if !b.Expires.After(time.Now()) {
				t.Fatal("an expired binding was returned")
			}
		}
	})
}

// noAuth lets every request through; the fuzz target calls register
// directly, after authentication.
type noAuth struct{}

func (noAuth) Authenticate(*sip.Request, sip.ServerTransaction) *auth.Identity { return nil }
