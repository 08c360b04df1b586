// Command bridgeserver runs Parley's media bridge (media.Bridge) alone in
// its own process, for benchmarks beside other SFUs (bench/bridge.sh): a
// focus in memory with one meeting, organized by the user "pub" (who
// alone presents), any other user joining it as an attendee, and the
// bridge on one UDP port with the reference server's defaults (DTLS-SRTP,
// TWCC, the downlink estimator and the pacer on).
//
// The reference server (examples/server) would serve the same bridge, but
// with SIP, the web client and the signaling API's sign-in around it: this
// keeps the process to the bridge, with the least signaling a pion client
// needs, over plain HTTP on loopback:
//
//	POST /token   {"user":"s1","fingerprint":"sha-256 AB:..."}   → {"meeting","participant","token"}
//	POST /join    {"meeting","participant","token","offer"}      → {"answer"}
//	GET  /offer?participant=P    the bridge's next offer (long poll: 204 when none came within 10 s, 410 when the session ended)
//	POST /answer?participant=P   the client's answer to it (the SDP as the body)
//
// /token stands in for the focus's grant (conference.Focus.AddUser): it
// enters the user into the meeting and returns a media token bound to the
// DTLS fingerprint of the offer to come; /join is media.Bridge.Join, which
// checks that token before it acts on the offer.
//
//	bridgeserver -http 127.0.0.1:7880 -media 127.0.0.1:7882 [-cpuprofile FILE]
//
// It prints "listening http ADDRESS media ADDRESS" once it serves, and
// stops on SIGINT or SIGTERM (writing the CPU profile then).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/media"
)

const (
	domain      = "bench.test"
	organizer   = "pub"
	maxBody     = 128 << 10
	offerWait   = 10 * time.Second
	socketBytes = 4 << 20 // the media socket's buffers (capped by net.core.rmem_max)
)

// userName is what /token accepts as a user name.
var userName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:7880", "the TCP `address` of the signaling")
	mediaAddr := flag.String("media", "127.0.0.1:7882", "the UDP `address` of the media")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to `file` from start to stop")
	flag.Parse()
	if err := run(*httpAddr, *mediaAddr, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "bridgeserver:", err)
		os.Exit(1)
	}
}

func run(httpAddr, mediaAddr, cpuProfile string) error {
	// Warnings only: the focus logs every join at Info.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	s, err := newServer(mediaAddr)
	if err != nil {
		return err
	}
	defer s.close()
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("listening http", ln.Addr(), "media", s.udp.LocalAddr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-stop:
	case err := <-served:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	m := s.bridge.Metrics()
	fmt.Printf("bridge: %+v\n", m)
	return nil
}

// server is the focus, the bridge and the sessions joined through it.
type server struct {
	dir     *auth.MemoryDirectory
	focus   *conference.Focus
	tokens  *conference.TokenIssuer
	bridge  *media.Bridge
	udp     net.PacketConn
	meeting conference.MeetingID

	mu       sync.Mutex
	sessions map[conference.ParticipantID]*media.Session
}

func newServer(mediaAddr string) (*server, error) {
	dir := auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: domain}); err != nil {
		return nil, err
	}
	if err := dir.PutUser(user(organizer)); err != nil {
		return nil, err
	}
	tokens, err := conference.NewTokenIssuer(nil, nil)
	if err != nil {
		return nil, err
	}
	focus, err := conference.NewFocus(conference.FocusConfig{Meetings: conference.NewMemoryMeetings(), Directory: dir, Tokens: tokens,
		JoinURL: "https://meet." + domain, MediaServer: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, focus: focus, tokens: tokens, sessions: map[conference.ParticipantID]*media.Session{}}
	udp, err := net.ListenPacket("udp4", mediaAddr)
	if err != nil {
		_ = focus.Close()
		return nil, err
	}
	if u, ok := udp.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(socketBytes)
		_ = u.SetWriteBuffer(socketBytes)
	}
	s.udp = udp
	s.bridge, err = media.NewBridge(media.BridgeConfig{Tokens: tokens, Meetings: focus, UDP: udp, Logger: slog.Default()})
	if err != nil {
		s.close()
		return nil, err
	}
	m, err := focus.Schedule(context.Background(), identity(organizer), conference.MeetingOptions{
		Access: conference.AccessOrganization, Presenter: conference.PresentersOrganizer})
	if err != nil {
		s.close()
		return nil, err
	}
	s.meeting = m.ID
	return s, nil
}

func (s *server) close() {
	if s.bridge != nil {
		_ = s.bridge.Close()
	}
	_ = s.focus.Close()
	if s.udp != nil {
		_ = s.udp.Close()
	}
}

func user(name string) auth.User {
	return auth.User{URI: "sip:" + name + "@" + domain, Tenant: domain, Enabled: true, MeetingLicense: true, Company: "Bench"}
}

func identity(name string) *auth.Identity {
	return &auth.Identity{URI: "sip:" + name + "@" + domain, Tenant: domain, Kind: auth.Internal, Method: auth.MethodDigest}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /join", s.join)
	mux.HandleFunc("GET /offer", s.offer)
	mux.HandleFunc("POST /answer", s.answer)
	return mux
}

type tokenRequest struct {
	User        string `json:"user"`
	Fingerprint string `json:"fingerprint"`
}

type grant struct {
	Meeting     conference.MeetingID     `json:"meeting"`
	Participant conference.ParticipantID `json:"participant"`
	Token       string                   `json:"token"`
}

type joinRequest struct {
	grant
	Offer string `json:"offer"`
}

func (s *server) token(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decode(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !userName.MatchString(req.User) {
		http.Error(w, fmt.Sprintf("user %q: want a name of lower-case letters, digits and dashes", req.User), http.StatusBadRequest)
		return
	}
	if req.Fingerprint == "" {
		http.Error(w, "fingerprint is required", http.StatusBadRequest)
		return
	}
	if req.User != organizer {
		if err := s.dir.PutUser(user(req.User)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	p, err := s.focus.Join(r.Context(), s.meeting, conference.JoinRequest{Identity: identity(req.User)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	g, err := s.focus.AddUser(s.meeting, p.ID, req.Fingerprint)
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	writeJSON(w, grant{Meeting: s.meeting, Participant: p.ID, Token: g.Token})
}

func (s *server) join(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := decode(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sess, err := s.bridge.Join(r.Context(), media.JoinRequest{Meeting: req.Meeting, Participant: req.Participant, Token: req.Token, Offer: req.Offer})
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, media.ErrRefused) {
			status = http.StatusForbidden
		}
		http.Error(w, err.Error(), status)
		return
	}
	pid := sess.Participant()
	s.mu.Lock()
	s.sessions[pid] = sess
	s.mu.Unlock()
	go func() {
		<-sess.Done()
		s.mu.Lock()
		if s.sessions[pid] == sess {
			delete(s.sessions, pid)
		}
		s.mu.Unlock()
	}()
	writeJSON(w, map[string]string{"answer": sess.Answer()})
}

// session returns the session of the request's participant, or writes
// the error.
func (s *server) session(w http.ResponseWriter, r *http.Request) *media.Session {
	pid := r.URL.Query().Get("participant")
	if pid == "" {
		http.Error(w, "participant is required", http.StatusBadRequest)
		return nil
	}
	s.mu.Lock()
	sess := s.sessions[conference.ParticipantID(pid)]
	s.mu.Unlock()
	if sess == nil {
		http.Error(w, fmt.Sprintf("participant %q has no session", pid), http.StatusGone)
	}
	return sess
}

func (s *server) offer(w http.ResponseWriter, r *http.Request) {
	sess := s.session(w, r)
	if sess == nil {
		return
	}
	t := time.NewTimer(offerWait)
	defer t.Stop()
	select {
	case sdp := <-sess.Offers():
		w.Header().Set("Content-Type", "application/sdp")
		_, _ = io.WriteString(w, sdp)
	case <-sess.Done():
		http.Error(w, "the session ended", http.StatusGone)
	case <-t.C:
		w.WriteHeader(http.StatusNoContent)
	case <-r.Context().Done():
	}
}

func (s *server) answer(w http.ResponseWriter, r *http.Request) {
	sess := s.session(w, r)
	if sess == nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "answer: unreadable or too long", http.StatusBadRequest)
		return
	}
	if err := sess.SetAnswer(string(body)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("content type %q: want application/json", ct)
	}
	d := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
