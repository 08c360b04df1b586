package media

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/parleyuc/parley/conference"
)

// The meeting's chat: a participant's text, relayed by the signaling to
// every socket of the meeting. Only participants in the meeting (not in
// its lobby) send and receive it, so an anonymous guest chats once
// admitted; a message is bounded in size and each socket in rate.
const (
	// MaxChatText bounds a chat message's text, in bytes of UTF-8.
	MaxChatText = 2000
	// chatBurst and chatRate bound how fast one socket may chat.
	chatBurst = 10
	chatRate  = rate.Limit(1) // per second, after the burst
	// chatQueue bounds the messages waiting for one socket: a socket
	// that does not keep up misses messages rather than slowing the
	// meeting's others.
	chatQueue = 64
)

// Chat's refusals, sent to the browser as an error message.
var (
	errChatLobby = errors.New("chat: you can chat once a presenter has let you in")
	errChatEmpty = errors.New("chat: the message is empty")
	errChatLong  = errors.New("chat: the message is too long")
	errChatUTF8  = errors.New("chat: the message is not UTF-8 text")
	errChatRate  = errors.New("chat: too many messages; wait a moment")
)

// register adds a socket to its meeting's, for the chat.
func (s *Signaling) register(k *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms == nil {
		s.rooms = make(map[conference.MeetingID]map[*socket]struct{})
	}
	room := s.rooms[k.me.Meeting]
	if room == nil {
		room = make(map[*socket]struct{})
		s.rooms[k.me.Meeting] = room
	}
	room[k] = struct{}{}
}

func (s *Signaling) unregister(k *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.rooms[k.me.Meeting]
	delete(room, k)
	if len(room) == 0 {
		delete(s.rooms, k.me.Meeting)
	}
}

// chat checks a participant's chat message and relays it to the sockets
// of its meeting whose participants are in it, the sender's included.
func (k *socket) chat(text string) error {
	f := k.s.cfg.Focus
	me, err := f.Participant(k.me.Meeting, k.me.ID)
	if err != nil || me.State != conference.Joined {
		return errChatLobby
	}
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return errChatEmpty
	case len(text) > MaxChatText:
		return errChatLong
	case !utf8.ValidString(text):
		return errChatUTF8
	case !k.chatLimit.Allow():
		return errChatRate
	}
	msg := message{Type: "chat", Participant: me.ID, Name: chatName(&me), Text: text, Time: time.Now().UTC().Format(time.RFC3339)}
	k.s.mu.Lock()
	to := make([]*socket, 0, len(k.s.rooms[me.Meeting]))
	for o := range k.s.rooms[me.Meeting] {
		to = append(to, o)
	}
	k.s.mu.Unlock()
	for _, o := range to {
		if p, err := f.Participant(o.me.Meeting, o.me.ID); err != nil || p.State != conference.Joined {
			continue // in the lobby: not in the meeting's conversation
		}
		select {
		case o.chats <- msg:
		default:
			k.s.log.Info("media: chat message dropped for a socket that does not keep up", "meeting", me.Meeting, "participant", o.me.ID)
		}
	}
	return nil
}

func newChatLimit() *rate.Limiter { return rate.NewLimiter(chatRate, chatBurst) }

// chatName names a chat message's sender: its display name, else a
// user's address.
func chatName(p *conference.Participant) string {
	switch {
	case p.DisplayName != "":
		return p.DisplayName
	case p.AOR != "":
		return strings.TrimPrefix(p.AOR, "sip:")
	}
	return "Anonymous"
}
