package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/pki"
)

// admin is the tenant admin's client of the admin API.
type admin struct {
	t     testing.TB
	base  string
	token string
	c     *http.Client
}

func (s *server) admin(t testing.TB) *admin {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(s.data, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &admin{t: t, base: "https://" + s.listeners["https"] + "/admin/v1", token: strings.TrimSpace(string(token)), c: s.httpsClient(t)}
}

// do sends method path with body (JSON, or none) and decodes the answer
// into out (if not nil); it returns the status.
func (a *admin) do(method, path, body string, out any) int {
	a.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req := mustRequest(a.t, method, a.base+path, b)
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			a.t.Fatalf("%s %s: %v\n%s", method, path, err, data)
		}
	}
	return res.StatusCode
}

func (a *admin) must(method, path, body string, want int, out any) {
	a.t.Helper()
	if got := a.do(method, path, body, out); got != want {
		a.t.Fatalf("%s %s: %d, want %d", method, path, got, want)
	}
}

// TestAdminAPI: the tenant admin, with the bearer token from the data
// directory, manages users and licenses, sees and ends sessions and
// meetings, sets federation, and issues and revokes certificates; each
// change takes effect on what users can do.
func TestAdminAPI(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	a := s.admin(t)

	// Without the token, or with another, nothing.
	for _, token := range []string{"", "not-the-token-at-all-0123456789"} {
		wrong := *a
		wrong.token = token
		if got := wrong.do("GET", "/users", "", nil); got != http.StatusUnauthorized {
			t.Fatalf("token %q: %d, want 401", token, got)
		}
	}

	// Users: carol is created with a password, and signs in.
	var users []adminUser
	a.must("GET", "/users", "", 200, &users)
	if len(users) != 3 || users[0].URI != "sip:alice@example.test" || !users[0].HasPassword || users[0].Password != "" {
		t.Fatalf("users %+v", users)
	}
	a.must("POST", "/users", `{"uri":"sip:carol@example.test","display_name":"Carol","password":"correct horse battery","enabled":true}`, 201, nil)
	a.must("POST", "/users", `{"uri":"sip:carol@example.test","password":"x"}`, http.StatusConflict, nil)
	a.must("POST", "/users", `{"uri":"sip:mallory@elsewhere.test","enabled":true}`, http.StatusBadRequest, nil)
	a.must("POST", "/users", `{"uri":"sip:dan@example.test","enabld":true}`, http.StatusBadRequest, nil)
	carol := s.sipUser(t, "carol", "correct horse battery", "localhost")
	if res, err := carol.do(carol.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"])); err != nil || res.StatusCode != 200 {
		t.Fatalf("carol signs in: %v %v", res, err)
	}

	// Licenses: carol may not schedule meetings until she holds one.
	c := s.httpsClient(t)
	schedule := func(user, password string) int {
		res := digestDo(t, c, "POST", "https://"+s.listeners["https"]+"/api/meetings", user, password, []byte(`{}`))
		res.Body.Close()
		return res.StatusCode
	}
	if got := schedule("carol", "correct horse battery"); got != http.StatusForbidden {
		t.Fatalf("carol without a license schedules: %d", got)
	}
	a.must("PATCH", "/users/sip:carol@example.test", `{"meeting_license":true}`, 200, nil)
	var licenses struct{ Meeting []string }
	a.must("GET", "/licenses", "", 200, &licenses)
	if strings.Join(licenses.Meeting, " ") != "sip:alice@example.test sip:bob@example.test sip:carol@example.test" {
		t.Fatalf("licenses %v", licenses.Meeting)
	}
	if got := schedule("carol", "correct horse battery"); got != http.StatusCreated {
		t.Fatalf("carol with a license schedules: %d", got)
	}

	// Sessions: carol's connection is listed; disabling her closes it and
	// she cannot sign in again.
	var sessions []sessionJSON
	a.must("GET", "/sessions", "", 200, &sessions)
	if len(sessions) != 1 || sessions[0].URI != "sip:carol@example.test" || sessions[0].Method != "digest" || sessions[0].Transport != "TLS" {
		t.Fatalf("sessions %+v", sessions)
	}
	a.must("PATCH", "/users/sip:carol@example.test", `{"enabled":false}`, 200, nil)
	a.must("GET", "/sessions", "", 200, &sessions)
	if len(sessions) != 0 {
		t.Fatalf("sessions after disabling carol: %+v", sessions)
	}
	carolAgain := s.sipUser(t, "carol", "correct horse battery", "localhost")
	if res, err := carolAgain.do(carolAgain.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"])); err != nil || res.StatusCode != 403 {
		t.Fatalf("disabled carol signs in: %v %v", res, err)
	}

	a.must("DELETE", "/users/sip:carol@example.test", "", http.StatusNoContent, nil)
	a.must("GET", "/users/sip:carol@example.test", "", http.StatusNotFound, nil)

	// Meetings: alice's are listed; ending one takes her out and it is gone.
	res := digestDo(t, c, "POST", "https://"+s.listeners["https"]+"/api/meetings", "alice", s.passwords["sip:alice@example.test"], []byte(`{"subject":"Ops review"}`))
	var m meetingResponse
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	aliceSIP := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	byes := make(chan struct{}, 1)
	aliceSIP.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		byes <- struct{}{}
	})
	if res, err := aliceSIP.do(aliceSIP.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"))); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice joins: %v %v", res, err)
	}
	a.must("GET", "/meetings?organizer=not%20a%20uri", "", http.StatusBadRequest, nil)
	var list []meetingResponse
	a.must("GET", "/meetings?organizer=sip:alice@example.test", "", 200, &list)
	if len(list) != 1 || list[0].ID != m.ID || list[0].Subject != "Ops review" {
		t.Fatalf("alice's meetings %+v", list)
	}
	var shown struct {
		Organizer    string
		Participants []participantJSON
	}
	a.must("GET", "/meetings/"+m.ID, "", 200, &shown)
	if shown.Organizer != "sip:alice@example.test" || len(shown.Participants) != 1 || shown.Participants[0].Role != "organizer" {
		t.Fatalf("meeting %+v", shown)
	}
	a.must("DELETE", "/meetings/"+m.ID, "", http.StatusNoContent, nil)
	select {
	case <-byes:
	case <-time.After(5 * time.Second):
		t.Fatal("alice was not sent a BYE when the meeting ended")
	}
	a.must("GET", "/meetings/"+m.ID, "", http.StatusNotFound, nil)

	// Federation: the admin blocks a partner.
	var policy struct{ Blocked []string }
	a.must("POST", "/federation", `{"block":["rogue.test"]}`, 200, &policy)
	if strings.Join(policy.Blocked, " ") != "rogue.test" {
		t.Fatalf("federation policy %+v", policy)
	}

	// Certificates: one issued for the gateway signs it in; revoked, it is
	// on the CRL the server publishes, and refused.
	var issued struct {
		Serial      string
		Certificate string
		PrivateKey  string `json:"private_key"`
	}
	a.must("POST", "/certificates", `{"uri":"sip:nobody@example.test"}`, http.StatusNotFound, nil)
	a.must("POST", "/certificates", `{"uri":"`+demoGateway+`","days":1000}`, http.StatusBadRequest, nil)
	a.must("POST", "/certificates", `{"uri":"`+demoGateway+`","days":30}`, http.StatusCreated, &issued)
	gwCert, err := tls.X509KeyPair([]byte(issued.Certificate), []byte(issued.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	gw := func() (*sip.Response, error) {
		kp, err := pki.NewKeyPair(gwCert)
		if err != nil {
			t.Fatal(err)
		}
		ua, _ := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfig(kp, s.verifier(t), "localhost")))
		client, _ := sipgo.NewClient(ua)
		defer func() { _ = client.Close(); _ = ua.Close() }()
		u := &sipUser{s: s, name: "gateway", client: client}
		return u.do(u.request(sip.OPTIONS, "sip:"+s.listeners["sip-tls"]))
	}
	if res, err := gw(); err != nil || res.StatusCode != 200 {
		t.Fatalf("the gateway with its certificate: %v %v", res, err)
	}
	a.must("POST", "/certificates/zz/revoke", `{}`, http.StatusBadRequest, nil)
	a.must("POST", "/certificates/"+issued.Serial+"/revoke", `{"reason":"keyStolen"}`, http.StatusBadRequest, nil)
	a.must("POST", "/certificates/"+issued.Serial+"/revoke", `{"reason":"keyCompromise"}`, 200, nil)
	a.must("POST", "/certificates/"+issued.Serial+"/revoke", `{}`, http.StatusConflict, nil)
	var revoked []revocationJSON
	a.must("GET", "/certificates/revoked", "", 200, &revoked)
	if len(revoked) != 1 || revoked[0].Serial != issued.Serial || revoked[0].Reason != "keyCompromise" {
		t.Fatalf("revoked %+v", revoked)
	}
	crlRes, err := http.Get("http://" + s.listeners["http"] + "/pki/ca.crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(crlRes.Body)
	crlRes.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := new(big.Int).SetString(issued.Serial, 16)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(serial) != 0 {
		t.Fatalf("CRL entries %+v", crl.RevokedCertificateEntries)
	}
	// The server refuses the handshake it took before (with TLS 1.3 the
	// client hears it on its first read).
	kp, _ := pki.NewKeyPair(gwCert)
	conn, err := tls.Dial("tcp", s.listeners["sip-tls"], pki.ClientTLSConfig(kp, s.verifier(t), "localhost"))
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("a handshake with the revoked certificate: %v, want the server's refusal", err)
	}
}

// TestAdminThrottlesWrongTokens: a source that guesses admin tokens is
// made to wait (429 with Retry-After), even with the right token, while
// the admin at another address is served, and the admin's success does
// not clear the guesser's failures.
func TestAdminThrottlesWrongTokens(t *testing.T) {
	s := startServer(t, t.TempDir())
	from := func(ip string) *admin {
		a := s.admin(t)
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(nil, s.verifier(t), "localhost"), DialContext: d.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		a.c = &http.Client{Timeout: 10 * time.Second, Transport: tr}
		return a
	}
	attacker, tenantAdmin := from("127.0.0.2"), from("127.0.0.3")
	token := attacker.token
	attacker.token = "not-the-token-at-all-0123456789"
	refused := 0
	for range 20 {
		switch got := attacker.do("GET", "/users", "", nil); got {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("wrong token: %d", got)
		}
	}
	if refused < 10 {
		t.Fatalf("20 wrong tokens: %d answered 429, want all but the first few", refused)
	}
	attacker.token = token
	req := mustRequest(t, "GET", attacker.base+"/users", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := attacker.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("right token from the guessing source: %d Retry-After %q, want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	tenantAdmin.must("GET", "/users", "", 200, nil)
	if got := attacker.do("GET", "/users", "", nil); got != http.StatusTooManyRequests {
		t.Fatalf("guessing source after another source's success: %d, want 429", got)
	}
}
