package conference

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/auth"
)

// TestNewFocusRefusesIncompleteConfigs: a zero Config and a Config missing
// each required field give an error naming it, never a Focus that panics
// later.
func TestNewFocusRefusesIncompleteConfigs(t *testing.T) {
	tokens, _ := NewTokenIssuer(nil, nil)
	ua, _ := sipgo.NewUA()
	t.Cleanup(func() { _ = ua.Close() })
	client, _ := sipgo.NewClient(ua)
	valid := func() FocusConfig {
		return FocusConfig{Meetings: NewMemoryMeetings(), Directory: testDirectory(t), Tokens: tokens}
	}
	for _, tc := range []struct {
		field string
		edit  func(*FocusConfig)
	}{
		{"FocusConfig.Meetings", func(c *FocusConfig) { *c = FocusConfig{} }},
		{"FocusConfig.Meetings", func(c *FocusConfig) { c.Meetings = nil }},
		{"FocusConfig.Directory", func(c *FocusConfig) { c.Directory = nil }},
		{"FocusConfig.Tokens", func(c *FocusConfig) { c.Tokens = nil }},
		{"FocusConfig.Auth", func(c *FocusConfig) { c.Client = client }},
		{"FocusConfig.Auth", func(c *FocusConfig) { c.DialInNumbers = []string{"+15550100"} }},
		{"FocusConfig.Auth", func(c *FocusConfig) { c.Gateways = []string{"sip:gw@example.test"} }},
		{"FocusConfig.PlainRTPGateways", func(c *FocusConfig) {
			c.Auth = nopAuth{}
			c.PlainRTPGateways = []string{"sip:gw@example.test"}
		}},
		{"FocusConfig.TokenTTL", func(c *FocusConfig) { c.TokenTTL = -time.Second }},
		{"FocusConfig.MaxParticipants", func(c *FocusConfig) { c.MaxParticipants = -1 }},
	} {
		cfg := valid()
		tc.edit(&cfg)
		f, err := NewFocus(cfg)
		if err == nil {
			_ = f.Close()
			t.Errorf("%s: NewFocus accepted the config", tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
	}
}

// A Focus made for its Go API alone (no Auth) and mounted on a SIP server
// by mistake answers 500 instead of dereferencing its missing
// Authenticator.
func TestFocusWithoutAuthAnswersSIPWith500(t *testing.T) {
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{})
	ua, _ := sipgo.NewUA()
	srv, _ := sipgo.NewServer(ua)
	for _, method := range []sip.RequestMethod{sip.INVITE, sip.SUBSCRIBE, sip.INFO, sip.BYE} {
		srv.OnRequest(method, e.focus.HandleRequest)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(conn) }()
	t.Cleanup(func() { _ = conn.Close(); _ = ua.Close(); <-done })

	c, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, method := range []string{"INVITE", "SUBSCRIBE"} {
		req := method + " sip:" + string(m.ID) + "@example.test SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bK-" + method + "\r\n" +
			"From: <sip:mallory@example.test>;tag=1\r\nTo: <sip:" + string(m.ID) + "@example.test>\r\n" +
			"Call-ID: noauth-" + method + "\r\nCSeq: 1 " + method + "\r\nMax-Forwards: 70\r\n" +
			"Contact: <sip:mallory@" + c.LocalAddr().String() + ">\r\nEvent: conference\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", method, err)
		}
		if status, _, _ := strings.Cut(string(buf[:n]), "\r\n"); !strings.HasPrefix(status, "SIP/2.0 500") {
			t.Errorf("%s without FocusConfig.Auth: %q, want 500", method, status)
		}
	}
	if n := len(e.focus.Participants(m.ID)); n != 0 {
		t.Errorf("%d participants joined a focus that authenticates nobody", n)
	}
}

type nopAuth struct{}

func (nopAuth) Authenticate(*sip.Request, sip.ServerTransaction) *auth.Identity { return nil }
