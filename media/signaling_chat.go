package media

import (
	"errors"
	"time"

	"golang.org/x/time/rate"

	"github.com/parleyuc/parley/conference"
)

// The meeting's chat, carried by the focus ([conference.Focus.Chat]): a
// browser's text goes to the focus, which gives it to the meeting's
// sockets (through WatchChat) and SIP participants; a socket forwards
// the messages while its participant is in the meeting (not in its
// lobby, so an anonymous guest chats once admitted). Each socket is
// bounded in rate, each message in size ([conference.MaxChatText]).
const (
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
	errChatText  = errors.New("chat: the message is empty or too long")
	errChatRate  = errors.New("chat: too many messages; wait a moment")
	// errHandRate is a raised hand's refusal ([conference.ErrTooFast]).
	errHandRate = errors.New("hand: raised and lowered too often; wait a moment")
)

// chat sends a participant's chat message through the focus.
func (k *socket) chat(text string) error {
	if !k.chatLimit.Allow() {
		return errChatRate
	}
	_, err := k.s.cfg.Focus.Chat(k.ctx, k.me.Meeting, k.me.ID, text)
	switch {
	case errors.Is(err, conference.ErrChatText):
		return errChatText
	case errors.Is(err, conference.ErrChatNotIn):
		return errChatLobby
	}
	return err
}

// watchChat queues the meeting's chat messages for the socket, dropping
// them when it is far behind.
func (k *socket) watchChat(m *conference.Meeting) (stop func(), err error) {
	return k.s.cfg.Focus.WatchChat(k.ctx, m.ID, func(c conference.ChatMessage) {
		select {
		case k.chats <- message{Type: "chat", Participant: c.From, Name: c.Name, Text: c.Text, Time: c.Time.Format(time.RFC3339)}:
		default:
			k.s.log.Info("media: chat message dropped for a socket that does not keep up", "meeting", m.ID)
		}
	})
}

// deliverChat sends a chat message to the browser if its participant is
// in the meeting.
func (k *socket) deliverChat(c message) {
	if p, err := k.s.cfg.Focus.Participant(k.me.Meeting, k.me.ID); err != nil || p.State != conference.Joined {
		return // in the lobby: not in the meeting's conversation
	}
	k.send(c)
}

func newChatLimit() *rate.Limiter { return rate.NewLimiter(chatRate, chatBurst) }
