package media

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
)

// Conference is what the browser signaling asks of the focus: the same
// operations its SIP side carries out. [*conference.Focus] is one.
type Conference interface {
	Meetings
	Join(ctx context.Context, id conference.MeetingID, r conference.JoinRequest) (*conference.Participant, error)
	Leave(id conference.MeetingID, pid conference.ParticipantID) error
	AddUser(id conference.MeetingID, pid conference.ParticipantID, binding string) (*conference.MediaGrant, error)
	Participants(id conference.MeetingID) []conference.Participant
	Lobby() *conference.Lobby
	Promote(ctx context.Context, id conference.MeetingID, actor, pid conference.ParticipantID) error
	Demote(ctx context.Context, id conference.MeetingID, actor, pid conference.ParticipantID) error
	Eject(ctx context.Context, id conference.MeetingID, actor, pid conference.ParticipantID) error
	MuteAll(ctx context.Context, id conference.MeetingID, actor conference.ParticipantID, muted bool) error
	SetHand(ctx context.Context, id conference.MeetingID, actor, pid conference.ParticipantID, raised bool) error
	RecordedName(ctx context.Context, id conference.MeetingID, actor, pid conference.ParticipantID) ([]byte, error)
	Chat(ctx context.Context, id conference.MeetingID, from conference.ParticipantID, text string) (conference.ChatMessage, error)
	WatchChat(ctx context.Context, id conference.MeetingID, fn func(conference.ChatMessage)) (stop func(), err error)
}

// SignalingConfig configures [Signaling]. Focus and Bridge are required.
type SignalingConfig struct {
	Focus  Conference
	Bridge *Bridge
	// TicketTTL is how long a ticket may wait for its WebSocket. Default
	// 30 s.
	TicketTTL time.Duration
	// MaxTicketsPerMeeting bounds the tickets waiting for their socket
	// for one meeting, so that one conference key cannot fill the table
	// for every meeting. Default 1,000.
	MaxTicketsPerMeeting int
	// MaxTicketsPerSource bounds the tickets waiting for one source
	// address (an IPv6 source's /64). Default 50.
	MaxTicketsPerSource int
	Logger              *slog.Logger
}

// Signaling is the browser's way into a meeting: a small HTTPS and
// WebSocket API carrying the focus's operations and the bridge's SDP,
// with the same identities, tokens and policies as SIP clients.
//
//	POST …/{meeting}/ticket  {"display_name":"Gina"}   →  {"ticket":"…","expires":"…"}
//	GET  …/socket?ticket=…                                 →  the WebSocket
//
// The ticket request must be authenticated: TicketHandler runs behind
// [auth.Authenticator.HTTPForMeeting], which takes users' credentials and
// guests' ("meeting:<id>" and the conference key, for that meeting only),
// on a route whose {meeting} wildcard names the meeting. The ticket,
// single use and short lived, opens the WebSocket, since browsers cannot
// put credentials on one. On the socket, JSON messages, each with a
// "type":
//
//	from the browser:
//	  offer   {sdp}           its join offer (answered once the focus grants media), or a later one
//	  answer  {sdp}           its answer to the bridge's offer
//	  admit, reject, promote, demote, eject  {participant}   a leader's controls
//	  mute-all, unmute-all                                  a leader mutes the audience, or lets it speak
//	  raise-hand, lower-hand  {participant}                 raise or lower one's own hand (participant empty), or a
//	                                                        leader lowers another's (see [conference.Focus.SetHand])
//	  chat    {text}                                        a message to the meeting (participants in it only; see [conference.Focus.Chat])
//	to the browser:
//	  state   {participant, state, role, muted, hand, meeting, subject}  who it is in the meeting, on every change
//	  roster  {participants: [{id, name, role, state, type, muted, hand}]} the meeting as its role may see it
//	  answer  {sdp}, offer {sdp}                             the bridge's SDP
//	  chat    {participant, name, text, time}                 a participant's chat message, to those in the meeting
//	  error   {error}                                         a refused request (the socket stays)
//	  ended   {reason}                                        then the socket closes: left, rejected, ejected,
//	                                                          lobby timeout, meeting ended, …
//
// The participant joins the meeting when its socket opens (in the lobby
// if the meeting's policy says so, hearing the lobby music once it has
// offered media) and leaves it when the socket closes. Close ends every
// socket.
type Signaling struct {
	cfg SignalingConfig
	log *slog.Logger

	mu      sync.Mutex
	tickets map[string]ticket
	conns   map[*websocket.Conn]context.CancelFunc
	users   map[*websocket.Conn]string // the URI each socket's ticket was issued to
	closed  bool
	wg      sync.WaitGroup
}

type ticket struct {
	identity *auth.Identity
	meeting  conference.MeetingID
	name     string
	source   string // auth.SourceKey of who asked for it
	expires  time.Time
}

// maxSocketMessage bounds a message (and a frame) from the browser: an
// SDP offer and its JSON.
const maxSocketMessage = maxOfferSize + 4<<10

// maxTickets bounds the tickets waiting for their socket, all meetings
// together.
const maxTickets = 10000

// NewSignaling returns the browser signaling, or an error naming the
// missing field.
func NewSignaling(cfg SignalingConfig) (*Signaling, error) {
	switch {
	case cfg.Focus == nil:
		return nil, errors.New("media: SignalingConfig.Focus is required")
	case cfg.Bridge == nil:
		return nil, errors.New("media: SignalingConfig.Bridge is required")
	}
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = 30 * time.Second
	}
	switch {
	case cfg.MaxTicketsPerMeeting < 0:
		return nil, errors.New("media: SignalingConfig.MaxTicketsPerMeeting must not be negative")
	case cfg.MaxTicketsPerSource < 0:
		return nil, errors.New("media: SignalingConfig.MaxTicketsPerSource must not be negative")
	}
	if cfg.MaxTicketsPerMeeting == 0 {
		cfg.MaxTicketsPerMeeting = 1000
	}
	if cfg.MaxTicketsPerSource == 0 {
		cfg.MaxTicketsPerSource = 50
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Signaling{cfg: cfg, log: cfg.Logger, tickets: make(map[string]ticket), conns: make(map[*websocket.Conn]context.CancelFunc),
		users: make(map[*websocket.Conn]string)}, nil
}

// TicketHandler issues tickets (POST) for the meeting its route's
// {meeting} wildcard names; it must run behind the Authenticator's HTTP
// middleware, whose identity it takes. A guest's display name is the one
// it gives; a user's, the directory's.
func (s *Signaling) TicketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := auth.IdentityFromContext(r.Context())
		if !ok || id == nil {
			writeError(w, http.StatusUnauthorized, "not authenticated")
			return
		}
		var body struct {
			DisplayName string `json:"display_name"`
		}
		meeting := r.PathValue("meeting")
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		switch {
		case meeting == "":
			writeError(w, http.StatusNotFound, "no {meeting} in the route")
			return
		case len(body.DisplayName) > 64:
			writeError(w, http.StatusBadRequest, "display_name: over 64 bytes")
			return
		case !id.MayJoin(meeting):
			writeError(w, http.StatusForbidden, "meeting: this conference key is for another meeting")
			return
		}
		name := body.DisplayName
		if id.Kind != auth.Anonymous {
			name = "" // users appear under their directory name
		}
		t := ticket{identity: id, meeting: conference.MeetingID(meeting), name: name, source: sourceOf(r), expires: time.Now().Add(s.cfg.TicketTTL)}
		var b [16]byte
		_, _ = rand.Read(b[:])
		key := base64.RawURLEncoding.EncodeToString(b[:])
		if status, msg := s.store(key, t); status != 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.TicketTTL/time.Second)+1))
			writeError(w, status, msg)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, map[string]any{"ticket": key, "expires": t.expires.UTC().Format(time.RFC3339)})
	})
}

// store keeps a new ticket unless the table, the meeting's share or the
// source's share is full, in which case it returns the status and message
// to answer: 429 for a source over its share, 503 otherwise.
func (s *Signaling) store(key string, t ticket) (status int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var forMeeting, fromSource int
	for k, old := range s.tickets {
		switch {
		case now.After(old.expires):
			delete(s.tickets, k)
		case old.meeting == t.meeting:
			forMeeting++
		}
		if old.source == t.source && !now.After(old.expires) {
			fromSource++
		}
	}
	switch {
	case fromSource >= s.cfg.MaxTicketsPerSource:
		return http.StatusTooManyRequests, "too many tickets waiting from this address"
	case forMeeting >= s.cfg.MaxTicketsPerMeeting:
		return http.StatusServiceUnavailable, "too many tickets waiting for this meeting"
	case len(s.tickets) >= maxTickets:
		return http.StatusServiceUnavailable, "too many tickets waiting"
	}
	s.tickets[key] = t
	return 0, ""
}

// sourceOf names the request's source address for the per-source bounds.
func sourceOf(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return auth.SourceKey(ap.Addr())
	}
	return r.RemoteAddr
}

// take redeems a ticket, once.
func (s *Signaling) take(key string) (ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[key]
	delete(s.tickets, key)
	return t, ok && time.Now().Before(t.expires)
}

// sameOrigin applies the WebSocket library's default rule before anything
// else: a browser's Origin must name the host the request was made to (a
// request without Origin does not come from a page).
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// SocketHandler takes WebSocket upgrades with a ticket (GET ?ticket=).
// The WebSocket's Origin must be the page's own host. The ticket is
// redeemed only by a socket that opens: a refused attempt (another
// origin, not a WebSocket upgrade) leaves it to its owner.
func (s *Signaling) SocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "the socket must be opened by a page of this server")
			return
		}
		// The ticket is redeemed before the upgrade is answered, so a
		// second socket with it is refused with 401 however close
		// behind the first it comes (a failed upgrade spends it too).
		t, ok := s.take(r.URL.Query().Get("ticket"))
		if !ok {
			writeError(w, http.StatusUnauthorized, "no valid ticket")
			return
		}
		// A frame over the read limit is refused at its header, not after
		// the library has waited for its payload.
		conn, err := websocket.Accept(auth.LimitWebSocketFrames(w, maxSocketMessage), r, nil) // refuses a cross-origin page
		if err != nil {
			return // Accept has answered
		}
		conn.SetReadLimit(maxSocketMessage)
		ctx, cancel := context.WithCancel(context.Background())
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			cancel()
			_ = conn.Close(websocket.StatusGoingAway, "server closing")
			return
		}
		s.conns[conn] = cancel
		if t.identity != nil {
			s.users[conn] = t.identity.URI
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.conns, conn)
			delete(s.users, conn)
			s.mu.Unlock()
			cancel()
			s.wg.Done()
		}()
		reason := s.serve(ctx, conn, t)
		_ = conn.Close(websocket.StatusNormalClosure, reason)
	})
}

// Shutdown refuses new sockets, ends every browser's socket (each
// participant leaves its meeting) and returns when their
// goroutines are done, or with ctx's error when ctx ends first.
func (s *Signaling) Shutdown(ctx context.Context) error { return closeWithin(ctx, s.Close) }

// SignOut ends the sockets of the user uri (the canonical address of
// record their tickets were issued to): each leaves its meeting, its
// media session ending with it. It returns how many it ended; an
// application calls it when the user's rights are withdrawn.
func (s *Signaling) SignOut(uri string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for conn, u := range s.users {
		if u == uri {
			s.conns[conn]()
			// Ending: no longer the user's, so a second SignOut does not
			// count it while it closes.
			delete(s.users, conn)
			n++
		}
	}
	return n
}

// Close ends every socket (each participant leaves its meeting) and
// waits for them.
func (s *Signaling) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, cancel := range s.conns {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// message is one signaling message, either way.
type message struct {
	Type         string                   `json:"type"`
	SDP          string                   `json:"sdp,omitempty"`
	Participant  conference.ParticipantID `json:"participant,omitempty"`
	State        string                   `json:"state,omitempty"`
	Role         string                   `json:"role,omitempty"`
	Muted        bool                     `json:"muted,omitempty"`
	Hand         bool                     `json:"hand,omitempty"` // the participant's hand is raised
	Meeting      conference.MeetingID     `json:"meeting,omitempty"`
	Subject      string                   `json:"subject,omitempty"`
	Participants []rosterEntry            `json:"participants,omitempty"`
	Error        string                   `json:"error,omitempty"`
	Reason       string                   `json:"reason,omitempty"`
	Audio        []byte                   `json:"audio,omitempty"` // a recorded name, WAV (base64 in JSON)
	Name         string                   `json:"name,omitempty"`  // a chat message's sender
	Text         string                   `json:"text,omitempty"`  // a chat message
	Time         string                   `json:"time,omitempty"`  // when the server relayed a chat message (RFC 3339)
}

type rosterEntry struct {
	ID    conference.ParticipantID `json:"id"`
	Name  string                   `json:"name"`
	Role  string                   `json:"role"`
	State string                   `json:"state"`
	Type  string                   `json:"type"`
	Muted bool                     `json:"muted,omitempty"`
	Hand  bool                     `json:"hand,omitempty"`
	// RecordedName says the participant (a dial-in caller) recorded its
	// name: leaders get it with a recorded-name message.
	RecordedName bool `json:"recorded_name,omitempty"`
}

// socket is one participant's signaling connection.
type socket struct {
	s    *Signaling
	conn *websocket.Conn
	ctx  context.Context
	me   *conference.Participant
	sess *Session

	chats     chan message // chat messages for this socket, sent by the serve loop
	chatLimit *rate.Limiter
}

func (k *socket) send(m message) {
	ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
	defer cancel()
	b, _ := json.Marshal(m)
	_ = k.conn.Write(ctx, websocket.MessageText, b)
}

// serve runs one participant's socket until it closes, the participant
// is out of the meeting, or the signaling closes; it returns why.
func (s *Signaling) serve(ctx context.Context, conn *websocket.Conn, t ticket) string {
	k := &socket{s: s, conn: conn, ctx: ctx, chats: make(chan message, chatQueue), chatLimit: newChatLimit()}
	f := s.cfg.Focus
	m, err := f.Meeting(ctx, t.meeting)
	if err != nil {
		k.send(message{Type: "ended", Reason: "no such meeting"})
		return "no such meeting"
	}
	// Events are watched before joining, so none about this participant
	// is missed; they queue until the join has returned.
	events := make(chan conference.Event, 256)
	lost := make(chan struct{})
	var lostOnce sync.Once
	stop, err := f.Watch(ctx, m.ID, func(ev conference.Event) {
		select {
		case events <- ev:
		default: // far behind: end the socket rather than miss an ejection
			lostOnce.Do(func() { close(lost) })
		}
	})
	if err != nil {
		k.send(message{Type: "ended", Reason: err.Error()})
		return "meeting unavailable"
	}
	defer stop()
	stopChat, err := k.watchChat(m)
	if err != nil {
		k.send(message{Type: "ended", Reason: err.Error()})
		return "meeting unavailable"
	}
	defer stopChat()
	me, err := f.Join(ctx, m.ID, conference.JoinRequest{Identity: t.identity, DisplayName: t.name})
	if err != nil {
		k.send(message{Type: "ended", Reason: "refused: " + err.Error()})
		return "refused"
	}
	k.me = me
	defer func() {
		if k.sess != nil {
			_ = k.sess.Close()
		}
		_ = f.Leave(m.ID, me.ID)
	}()
	s.log.Info("browser joined a meeting", "meeting", m.ID, "participant", me.ID, "state", me.State, "uri", me.URI)
	k.sendState(m)

	incoming := make(chan message)
	readErr := make(chan error, 1)
	s.wg.Go(func() {
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			var msg message
			if err := json.Unmarshal(b, &msg); err != nil {
				k.send(message{Type: "error", Error: "unreadable message: " + err.Error()})
				continue
			}
			select {
			case incoming <- msg:
			case <-ctx.Done():
				return
			}
		}
	})
	var offers <-chan string
	var mediaDone <-chan struct{}
	for {
		select {
		case <-ctx.Done():
			return "server closing"
		case <-readErr:
			return "closed"
		case <-lost:
			k.send(message{Type: "ended", Reason: "the server fell behind"})
			return "fell behind"
		case <-mediaDone:
			// The media ends too when the focus takes the participant out
			// (ejected, rejected, the meeting ended): its event, which may
			// be a moment behind, says why in words the page shows.
			reason := "media ended"
			wait := time.NewTimer(time.Second)
		why:
			for {
				select {
				case ev := <-events:
					if r := outReason(ev, me.ID); r != "" {
						reason = r
						break why
					}
				case <-wait.C:
					break why
				case <-ctx.Done():
					break why
				}
			}
			wait.Stop()
			k.send(message{Type: "ended", Reason: reason})
			return reason
		case c := <-k.chats:
			k.deliverChat(c)
		case sdp, ok := <-offers:
			if !ok {
				offers = nil
				continue
			}
			k.send(message{Type: "offer", SDP: sdp})
		case ev := <-events:
			// A burst of changes (mute-all changes every attendee) is
			// told once, as the state after it.
			for more := true; more; {
				if reason := outReason(ev, me.ID); reason != "" {
					k.send(message{Type: "ended", Reason: reason})
					return reason
				}
				select {
				case ev = <-events:
				default:
					more = false
				}
			}
			k.sendState(m)
		case msg := <-incoming:
			if err := k.handle(ctx, msg); err != nil {
				k.send(message{Type: "error", Error: err.Error()})
			}
			if k.sess != nil && mediaDone == nil {
				offers, mediaDone = k.sess.Offers(), k.sess.Done()
			}
		}
	}
}

// outReasons name the events that take a participant out of the meeting.
var outReasons = map[conference.EventKind]string{conference.EventEjected: "ejected", conference.EventRejected: "rejected",
	conference.EventLobbyTimeout: "lobby timeout", conference.EventLeft: "left"}

// outReason says why ev takes participant me out of the meeting, or "".
// Rejected or ejected by no leader, the meeting ended (Focus.End).
func outReason(ev conference.Event, me conference.ParticipantID) string {
	if ev.Participant.ID != me {
		return ""
	}
	if ev.By == "" && (ev.Kind == conference.EventEjected || ev.Kind == conference.EventRejected) {
		return "meeting ended"
	}
	return outReasons[ev.Kind]
}

// sendState tells the participant where it is and, unless it waits in
// the lobby, who else is: leaders see the lobby too, to admit from it.
func (k *socket) sendState(m *conference.Meeting) {
	f := k.s.cfg.Focus
	me, err := f.Participant(m.ID, k.me.ID)
	if err != nil {
		return // gone: the event saying so ends the socket
	}
	k.send(message{Type: "state", Participant: me.ID, State: me.State.String(), Role: me.Role.String(), Muted: me.Muted, Hand: me.HandRaised, Meeting: m.ID, Subject: m.Subject})
	if me.State != conference.Joined {
		return
	}
	roster := []rosterEntry{}
	for _, p := range f.Participants(m.ID) {
		if p.State == conference.InLobby && !me.Role.Leader() {
			continue
		}
		roster = append(roster, rosterEntry{ID: p.ID, Name: p.DisplayName, Role: p.Role.String(), State: p.State.String(), Type: p.Type.String(), Muted: p.Muted, Hand: p.HandRaised,
			RecordedName: p.NameRecorded && me.Role.Leader()})
	}
	k.send(message{Type: "roster", Participants: roster})
}

// handle carries out one request of the participant's.
func (k *socket) handle(ctx context.Context, msg message) error {
	f, id, me := k.s.cfg.Focus, k.me.Meeting, k.me.ID
	switch msg.Type {
	case "offer":
		if k.sess != nil {
			answer, err := k.sess.Offer(msg.SDP)
			if err != nil {
				return err
			}
			k.send(message{Type: "answer", SDP: answer})
			return nil
		}
		fp, err := offerFingerprint(msg.SDP)
		if err != nil {
			return fmt.Errorf("offer: %w", err)
		}
		grant, err := f.AddUser(id, me, fp) // what a SIP client asks with add-user
		if err != nil {
			return err
		}
		sess, err := k.s.cfg.Bridge.Join(k.ctx, JoinRequest{Meeting: id, Participant: me, Token: grant.Token, Offer: msg.SDP})
		if err != nil {
			return err
		}
		k.sess = sess
		k.send(message{Type: "answer", SDP: sess.Answer()})
		return nil
	case "answer":
		if k.sess == nil {
			return errors.New("answer: no offer of the bridge's awaits one")
		}
		return k.sess.SetAnswer(msg.SDP)
	case "chat":
		return k.chat(msg.Text)
	case "mute-all", "unmute-all":
		return f.MuteAll(ctx, id, me, msg.Type == "mute-all")
	case "raise-hand", "lower-hand":
		pid := msg.Participant
		if pid == "" {
			pid = me
		}
		err := f.SetHand(ctx, id, me, pid, msg.Type == "raise-hand")
		if errors.Is(err, conference.ErrTooFast) {
			return errHandRate
		}
		return err
	case "recorded-name": // a leader listens to who a dial-in caller said it is
		wav, err := f.RecordedName(ctx, id, me, msg.Participant)
		if err != nil {
			return err
		}
		k.send(message{Type: "recorded-name", Participant: msg.Participant, Audio: wav})
		return nil
	}
	lobby := f.Lobby()
	control := map[string]func(ctx context.Context, id conference.MeetingID, actor, pid conference.ParticipantID) error{
		"admit": lobby.Admit, "reject": lobby.Reject, "promote": f.Promote, "demote": f.Demote, "eject": f.Eject,
	}[msg.Type]
	if control == nil {
		return fmt.Errorf("unknown message type %q", msg.Type)
	}
	return control(ctx, id, me, msg.Participant)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
