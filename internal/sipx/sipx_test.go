package sipx

import (
	"context"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestResolve(t *testing.T) {
	ctx := context.Background()
	for in, want := range map[string]string{
		"127.0.0.1:5061":       "127.0.0.1:5061", // an address already
		"[::1]:5061":           "[::1]:5061",
		"localhost:5061":       "127.0.0.1:5061", // the first IPv4 address, as sipgo dials
		"nowhere.invalid:5061": "nowhere.invalid:5061",
		"no port":              "no port",
	} {
		if got := Resolve(ctx, nil, in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRemoveHeadersWhateverTheCase: every copy goes, in any case, and a
// header sipgo does not parse (kept as received) ends the loop too.
func TestRemoveHeadersWhateverTheCase(t *testing.T) {
	m, err := sip.ParseMessage([]byte("MESSAGE sip:alice@example.test SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-1\r\n" +
		"From: <sip:bob@example.test>;tag=a\r\nTo: <sip:alice@example.test>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\n" +
		"P-Asserted-Identity: <sip:a@x>\r\np-asserted-identity: <sip:b@x>\r\nP-ASSERTED-IDENTITY: <sip:c@x>\r\nX-Keep: yes\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	RemoveHeaders(req, "P-Asserted-Identity")
	if len(req.GetHeaders("P-Asserted-Identity")) != 0 || req.GetHeader("X-Keep") == nil {
		t.Fatalf("after RemoveHeaders:\n%s", req)
	}
}
