package netnspeer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/internal/netnstest"
	"github.com/parleyuc/parley/media"
)

// peerEnv, set in a peer process's environment, makes the test binary a
// peer (Run on its standard input and output) instead of running tests:
// the test starts itself in a namespace with ip netns exec.
const peerEnv = "PARLEY_NETNSPEER"

func TestMain(m *testing.M) {
	if os.Getenv(peerEnv) == "1" {
		if err := Run(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m,
		// pion/webrtc v3.3.6 starts this goroutine for each track it
		// receives, to read the track's first packet; it is not released
		// when the connection closes while the receiver is starting (as in
		// media's tests).
		goleak.IgnoreAnyFunction("github.com/pion/webrtc/v3.(*PeerConnection).startReceiver.func1"))
}

// meeting is a focus with one meeting organized by alice, and a bridge
// listening on a UDP port of ip; or, where remote is set, bench/bridgeserver
// in a process of its own, serving the same.
type meeting struct {
	t       *testing.T
	focus   *conference.Focus
	bridge  *media.Bridge
	meeting *conference.Meeting

	remote string // bridgeserver's signaling, http://ADDRESS
	pid    int    // the process serving the bridge
}

// newRemoteMeeting starts bench/bridgeserver (built as bin) with its
// signaling and media on ip, stopped when t ends: its meeting is
// organized by "pub", whom alice joins as.
func newRemoteMeeting(t *testing.T, bin, ip string) *meeting {
	t.Helper()
	cmd := exec.Command(bin, "-http", net.JoinHostPort(ip, "0"), "-media", net.JoinHostPort(ip, "0"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("bridgeserver's standard error:\n%s", stderr.String())
		}
	})
	listening := make(chan string, 1)
	go func() { // ends with the process's output
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) == 5 && f[0] == "listening" && f[1] == "http" {
				listening <- f[2]
			}
		}
	}()
	select {
	case addr := <-listening:
		return &meeting{t: t, remote: "http://" + addr, pid: cmd.Process.Pid}
	case <-time.After(10 * time.Second):
		t.Fatalf("bridgeserver did not listen in 10 s: %s", stderr.String())
	}
	return nil
}

func newMeeting(t *testing.T, ip string) *meeting {
	t.Helper()
	dir := auth.NewMemoryDirectory()
	_ = dir.PutTenant(auth.Tenant{Domain: "example.test"})
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		_ = dir.PutUser(auth.User{URI: "sip:" + u + "@example.test", Tenant: "example.test", Enabled: true, MeetingLicense: true, Company: "Example Corp"})
	}
	tokens, err := conference.NewTokenIssuer(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	focus, err := conference.NewFocus(conference.FocusConfig{Meetings: conference.NewMemoryMeetings(), Directory: dir, Tokens: tokens,
		JoinURL: "https://meet.example.test", MediaServer: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = focus.Close() })
	udp, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	bridge, err := media.NewBridge(media.BridgeConfig{Tokens: tokens, Meetings: focus, UDP: udp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bridge.Close() })
	m, err := focus.Schedule(context.Background(), identity("alice"), conference.MeetingOptions{
		Access: conference.AccessOrganization, Presenter: conference.PresentersOrganizer})
	if err != nil {
		t.Fatal(err)
	}
	return &meeting{t: t, focus: focus, bridge: bridge, meeting: m, pid: os.Getpid()}
}

func identity(user string) *auth.Identity {
	return &auth.Identity{URI: "sip:" + user + "@example.test", Tenant: "example.test", Kind: auth.Internal, Method: auth.MethodDigest}
}

// peer is a peer process in a namespace, joined to the meeting: the
// test relays its signaling with the bridge.
type peer struct {
	name string
	id   conference.ParticipantID
	sess *media.Session
	cmd  *exec.Cmd

	inMu    sync.Mutex
	in      io.WriteCloser
	answers chan string
	reports chan Report
	exited  chan struct{} // closed once its output ends
	stderr  bytes.Buffer  // written by exec until Wait returns

	errMu sync.Mutex
	err   string // the error it reported
}

func (p *peer) send(m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	_, err = p.in.Write(append(b, '\n'))
	return err
}

// join starts a peer as cfg says in ns, as user, and joins it to the
// meeting.
func (m *meeting) join(ns *netnstest.Netns, user string, cfg Config) *peer {
	t := m.t
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{name: user, answers: make(chan string, 1), reports: make(chan Report, 1), exited: make(chan struct{})}
	p.cmd = ns.Command(self)
	p.cmd.Env = append(os.Environ(), peerEnv+"=1")
	p.cmd.Stderr = &p.stderr
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	offers := make(chan string, 1)
	go func() { // ends with the process's output
		defer close(p.exited)
		lines := bufio.NewScanner(out)
		lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for lines.Scan() {
			var msg Message
			if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
				p.setErr(fmt.Sprintf("bad output %q: %v", lines.Text(), err))
				continue
			}
			switch {
			case msg.Offer != "":
				offers <- msg.Offer
			case msg.Answer != "":
				p.answers <- msg.Answer
			case msg.Report != nil:
				p.reports <- *msg.Report
			case msg.Error != "":
				p.setErr(msg.Error)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = p.in.Close() // the peer ends
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		_ = p.cmd.Wait()
		if p.sess != nil {
			_ = p.sess.Close()
		}
		wg.Wait()
		if e := p.getErr(); e != "" {
			t.Errorf("%s: %s\n%s", user, e, p.stderr.String())
		}
	})
	if err := p.send(Message{Config: &cfg}); err != nil {
		t.Fatal(err)
	}
	var offer string
	select {
	case offer = <-offers:
	case <-p.exited:
		t.Fatalf("%s ended before its offer: %s", user, p.getErr())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s sent no offer in 20 s", user)
	}
	if m.remote != "" {
		m.joinRemote(ctx, p, &wg, offer)
		return p
	}
	part, err := m.focus.Join(context.Background(), m.meeting.ID, conference.JoinRequest{Identity: identity(user)})
	if err != nil {
		t.Fatal(err)
	}
	p.id = part.ID
	g, err := m.focus.AddUser(m.meeting.ID, part.ID, fingerprintOf(offer))
	if err != nil {
		t.Fatal(err)
	}
	p.sess, err = m.bridge.Join(context.Background(), media.JoinRequest{Meeting: m.meeting.ID, Participant: part.ID, Token: g.Token, Offer: offer})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.send(Message{Answer: p.sess.Answer()}); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { // the bridge's offers, answered until the session ends
		for offer := range p.sess.Offers() {
			if p.send(Message{Offer: offer}) != nil {
				return
			}
			select {
			case answer := <-p.answers:
				if err := p.sess.SetAnswer(answer); err != nil {
					p.setErr("the bridge refused an answer: " + err.Error())
					return
				}
			case <-p.exited:
				return
			}
		}
	})
	return p
}

// joinRemote joins p, whose offer is offer, through bridgeserver's
// signaling (its /token, /join, /offer and /answer), and relays the
// bridge's later offers and p's answers until ctx ends or the session
// does.
func (m *meeting) joinRemote(ctx context.Context, p *peer, wg *sync.WaitGroup, offer string) {
	t := m.t
	t.Helper()
	user := p.name
	if user == "alice" {
		user = "pub" // bridgeserver's organizer, who alone presents
	}
	var g struct {
		Meeting     string `json:"meeting"`
		Participant string `json:"participant"`
		Token       string `json:"token"`
	}
	if err := postJSON(m.remote+"/token", map[string]string{"user": user, "fingerprint": fingerprintOf(offer)}, &g); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	p.id = conference.ParticipantID(g.Participant)
	var answer struct {
		Answer string `json:"answer"`
	}
	if err := postJSON(m.remote+"/join", map[string]string{"meeting": g.Meeting, "participant": g.Participant, "token": g.Token, "offer": offer}, &answer); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	if err := p.send(Message{Answer: answer.Answer}); err != nil {
		t.Fatal(err)
	}
	q := "?participant=" + url.QueryEscape(g.Participant)
	wg.Go(func() { // the bridge's offers, answered until the session ends
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.remote+"/offer"+q, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			switch res.StatusCode {
			case http.StatusNoContent:
				continue
			case http.StatusOK:
			default:
				return // the session ended
			}
			if p.send(Message{Offer: string(body)}) != nil {
				return
			}
			select {
			case a := <-p.answers:
				res, err := http.Post(m.remote+"/answer"+q, "application/sdp", strings.NewReader(a))
				if err != nil {
					return
				}
				b, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusNoContent {
					p.setErr(fmt.Sprintf("the bridge refused an answer: %s %s", res.Status, b))
					return
				}
			case <-p.exited:
				return
			case <-ctx.Done():
				return
			}
		}
	})
}

// postJSON posts v to u as JSON and decodes the answer into out.
func postJSON(u string, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	res, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s %s", u, res.Status, body)
	}
	return json.Unmarshal(body, out)
}

func (p *peer) setErr(e string) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err == "" {
		p.err = e
	}
}

func (p *peer) getErr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// report asks the peer what it received over the last window.
func (p *peer) report(t *testing.T, window time.Duration) Report {
	t.Helper()
	if err := p.send(Message{ReportWindow: int(window / time.Millisecond)}); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	select {
	case r := <-p.reports:
		return r
	case <-p.exited:
		t.Fatalf("%s ended: %s", p.name, p.getErr()) // its standard error follows, once it is waited for
	case <-time.After(10 * time.Second):
		t.Fatalf("%s sent no report in 10 s", p.name)
	}
	return Report{}
}

func fingerprintOf(sdp string) string {
	for _, line := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			return v
		}
	}
	return ""
}
