package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/pki"
)

// httpsClient trusts the server's CA, as a browser that installed it.
func (s *server) httpsClient(t testing.TB) *http.Client {
	tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(nil, s.verifier(t), "localhost")}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// digestDo sends an HTTP request, answering a Digest SHA-256 challenge
// (RFC 7616) with user's password.
func digestDo(t testing.TB, c *http.Client, method, url, user, password string, body []byte) *http.Response {
	t.Helper()
	res, err := c.Do(mustRequest(t, method, url, body))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusUnauthorized || user == "" {
		return res
	}
	res.Body.Close()
	var challenge string
	for _, h := range res.Header.Values("WWW-Authenticate") {
		if strings.HasPrefix(h, "Digest ") && strings.Contains(h, "SHA-256") {
			challenge = h
		}
	}
	params := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+)="?([^",]*)"?`).FindAllStringSubmatch(strings.TrimPrefix(challenge, "Digest "), -1) {
		params[m[1]] = m[2]
	}
	h := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	req := mustRequest(t, method, url, body)
	uri := req.URL.RequestURI()
	cnonce := "0a4f113b"
	resp := h(h(user+":"+params["realm"]+":"+password) + ":" + params["nonce"] + ":00000001:" + cnonce + ":auth:" + h(method+":"+uri))
	auth := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="%s", response="%s"`,
		user, params["realm"], params["nonce"], uri, cnonce, resp)
	if o, ok := params["opaque"]; ok {
		auth += `, opaque="` + o + `"`
	}
	req.Header.Set("Authorization", auth)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustRequest(t testing.TB, method, url string, body []byte) *http.Request {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// TestMeetingScheduledOverHTTPSAndJoinedOverSIP: alice schedules over
// HTTPS, the join link works without revealing the key, a guest with the
// conference key waits in the lobby until alice admits it over SIP.
func TestMeetingScheduledOverHTTPSAndJoinedOverSIP(t *testing.T) {
	s := startServer(t, t.TempDir())
	api := "https://" + s.listeners["https"] + "/api/meetings"
	c := s.httpsClient(t)

	body := []byte(`{"subject":"Demo day","access":"organization"}`)
	for _, tc := range []struct {
		name, user string
		body       string
		want       int
	}{
		{"without signing in", "", string(body), http.StatusUnauthorized},
		{"with an unknown access policy", "alice", `{"access":"everyone"}`, http.StatusBadRequest},
		{"with an unknown field", "alice", `{"acces":"anyone"}`, http.StatusBadRequest},
	} {
		res := digestDo(t, c, "POST", api, tc.user, s.passwords["sip:alice@example.test"], []byte(tc.body))
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Fatalf("scheduling %s: %s", tc.name, res.Status)
		}
	}
	res := digestDo(t, c, "POST", api, "alice", s.passwords["sip:alice@example.test"], body)
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("schedule: %s %s", res.Status, b)
	}
	var m struct {
		ID, Focus, Key     string
		JoinURL            string `json:"join_url"`
		ConferenceKey      string `json:"conference_key"`
		Access, Presenter  string
		DialInID           string `json:"dial_in_id"`
		Expires            time.Time
		Subject, Organizer string
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if m.Focus != "sip:"+m.ID+"@example.test" || m.ConferenceKey == "" || m.Access != "organization" {
		t.Fatalf("meeting %+v", m)
	}

	// The join link, over HTTPS, without the key.
	page, err := c.Get(m.JoinURL)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(html), "Demo day") || !strings.Contains(string(html), m.Focus) ||
		strings.Contains(string(html), m.ConferenceKey) {
		t.Fatalf("join page %s:\n%s", page.Status, html)
	}
	unknown, err := c.Get("https://" + s.listeners["https"] + "/meet/" + strings.Repeat("a", 26))
	if err != nil {
		t.Fatal(err)
	}
	unknown.Body.Close()
	if unknown.StatusCode != 404 {
		t.Fatalf("unknown meeting's page: %s", unknown.Status)
	}

	// The organizer joins over SIP and watches the conference state.
	alice := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	notifies := make(chan *sip.Request, 16)
	alice.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		notifies <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	invite := alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"))
	aliceIn, err := alice.do(invite)
	if err != nil || aliceIn.StatusCode != 200 {
		t.Fatalf("alice joins: %v %v", aliceIn, err)
	}
	sub := alice.request(sip.SUBSCRIBE, m.Focus, sip.NewHeader("Event", "conference"), sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"))
	if res, err := alice.do(sub); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice subscribes: %v %v", res, err)
	}

	// A guest with the conference key waits in the lobby.
	guest := s.sipUser(t, "", "", "localhost")
	joined := make(chan *sip.Response, 1)
	go func() {
		req := guest.request(sip.INVITE, m.Focus)
		var from, to sip.Uri
		_ = sip.ParseUri("sip:guest@anonymous.invalid", &from)
		_ = sip.ParseUri(m.Focus, &to)
		params := sip.NewParams()
		params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(&sip.FromHeader{DisplayName: "Visitor", Address: from, Params: params})
		req.AppendHeader(&sip.ToHeader{Address: to})
		req.AppendHeader(sip.NewHeader("Contact", "<sip:guest-dev@127.0.0.1;transport=tls>"))
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := guest.client.Do(ctx, req)
		if err == nil && res.StatusCode == 401 {
			res, err = guest.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "meeting:" + m.ID, Password: m.ConferenceKey})
		}
		if err != nil {
			res = nil
		}
		joined <- res
	}()

	guestID := awaitLobby(t, notifies, "Visitor")
	admit := &conference.ControlRequest{ID: "1", Admit: &conference.Target{Participant: guestID}}
	info := inMeetingDialog(alice, invite, aliceIn, sip.INFO)
	info.AppendHeader(sip.NewHeader("Content-Type", conference.ControlType))
	info.SetBody(admit.Marshal())
	if res, err := alice.do(info); err != nil || res.StatusCode != 200 {
		t.Fatalf("admit: %v %v", res, err)
	}
	select {
	case res := <-joined:
		if res == nil || res.StatusCode != 200 {
			t.Fatalf("admitted guest: %v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("guest still waiting after admission")
	}
}

// awaitLobby follows the conference state the NOTIFYs carry until the
// participant shown as name waits in the lobby, and returns its ID.
func awaitLobby(t *testing.T, notifies <-chan *sip.Request, name string) string {
	t.Helper()
	u := awaitPendingUser(t, notifies, name, func(u conference.User) bool { return u.DisplayText == name })
	return string(u.Endpoints[0].ParticipantID())
}

// awaitPendingUser follows the conference state the NOTIFYs carry until
// a user that is matches waits in the lobby (one endpoint, pending), and
// returns it; who names it in the failure.
func awaitPendingUser(t *testing.T, notifies <-chan *sip.Request, who string, is func(conference.User) bool) conference.User {
	t.Helper()
	var state conference.ConferenceInfo
	deadline := time.After(15 * time.Second)
	for {
		select {
		case n := <-notifies:
			ci, err := conference.ParseConferenceInfo(n.Body())
			if err != nil {
				t.Fatal(err)
			}
			if err := state.Apply(ci); err != nil {
				t.Fatal(err)
			}
			for _, u := range state.Users.User {
				if is(u) && len(u.Endpoints) == 1 && u.Endpoints[0].Status == "pending" {
					return u
				}
			}
		case <-deadline:
			t.Fatalf("not told of %s in the lobby", who)
		}
	}
}

// inMeetingDialog builds a request in the dialog the INVITE and its 200
// made, to the focus's Contact.
func inMeetingDialog(u *sipUser, invite *sip.Request, ok *sip.Response, method sip.RequestMethod) *sip.Request {
	req := sip.NewRequest(method, *ok.Contact().Address.Clone())
	req.AppendHeader(invite.From())
	req.AppendHeader(ok.To())
	req.AppendHeader(invite.CallID())
	seq := invite.CSeq().SeqNo + 1
	if method == sip.ACK {
		seq = invite.CSeq().SeqNo
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	// The route set: the 200's Record-Route, in reverse (RFC 3261
	// section 12.1.2), as a front end passing the dialog on records it.
	rr := ok.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		req.AppendHeader(sip.NewHeader("Route", rr[i].Value()))
	}
	req.SetTransport("TLS")
	req.SetDestination(u.s.listeners["sip-tls"])
	return req
}
