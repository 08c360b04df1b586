package conference

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// The meeting's chat: a participant in the meeting (not in its lobby, so
// an anonymous guest once admitted) sends text to everyone in it. Chat
// watchers (the browser signaling) get every message; SIP participants
// get it as an in-dialog MESSAGE (RFC 3428, text/plain) on their INVITE
// dialog, and send theirs the same way.

// MaxChatText bounds a chat message's text, in bytes of UTF-8.
const MaxChatText = 2000

// SIP participants' chat rate, per dialog: a burst, then one a second.
const (
	sipChatBurst = 10
	sipChatRate  = rate.Limit(1)
)

// Chat's refusals.
var (
	// ErrChatNotIn: the sender is not in the meeting (in its lobby, or
	// gone).
	ErrChatNotIn = errors.New("conference: only participants in the meeting chat")
	// ErrChatText: the text is empty, over MaxChatText or not UTF-8.
	ErrChatText = errors.New("conference: chat text is empty, too long or not UTF-8")
)

// ChatMessage is a participant's message to the meeting.
type ChatMessage struct {
	Meeting MeetingID
	From    ParticipantID
	// Name is the sender's display name, else its address.
	Name string
	Text string
	Time time.Time
}

// Chat sends text (trimmed of surrounding space) from participant from to
// everyone in meeting id: the chat watchers and the SIP participants in
// it other than the sender. It returns the message as sent, or
// ErrChatNotIn, ErrChatText, or ErrNoParticipant.
func (f *Focus) Chat(ctx context.Context, id MeetingID, from ParticipantID, text string) (ChatMessage, error) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > MaxChatText || !utf8.ValidString(text) {
		return ChatMessage{}, ErrChatText
	}
	c, err := f.existing(id)
	if err != nil {
		return ChatMessage{}, err
	}
	p := c.parts[from]
	if p == nil || p.State != Joined {
		c.mu.Unlock()
		return ChatMessage{}, ErrChatNotIn
	}
	msg := ChatMessage{Meeting: id, From: from, Name: chatName(&p.Participant), Text: text, Time: time.Now().UTC()}
	for _, fn := range c.chats {
		fn(msg)
	}
	in := make(map[ParticipantID]bool, len(c.parts))
	for pid, q := range c.parts {
		in[pid] = q.State == Joined && pid != from
	}
	c.mu.Unlock()
	f.chatOverSIP(id, in, msg)
	return msg, nil
}

// WatchChat calls fn with every chat message of meeting id until stop is
// called. fn is called with the meeting's lock held: it must not block or
// call the Focus.
func (f *Focus) WatchChat(ctx context.Context, id MeetingID, fn func(ChatMessage)) (stop func(), err error) {
	c, err := f.conf(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.chats == nil {
		c.chats = map[int]func(ChatMessage){}
	}
	n := c.nextID
	c.nextID++
	c.chats[n] = fn
	c.mu.Unlock()
	done := false
	return func() {
		c.mu.Lock()
		if done {
			c.mu.Unlock()
			return
		}
		done = true
		delete(c.chats, n)
		c.mu.Unlock()
		f.release(c)
	}, nil
}

// chatName names a chat message's sender: its display name, else a
// user's address.
func chatName(p *Participant) string {
	switch {
	case p.DisplayName != "":
		return p.DisplayName
	case p.AOR != "":
		return strings.TrimPrefix(p.AOR, "sip:")
	}
	return "Anonymous"
}

// chatOverSIP sends msg as a MESSAGE on the INVITE dialog of each SIP
// participant marked in in.
func (f *Focus) chatOverSIP(id MeetingID, in map[ParticipantID]bool, msg ChatMessage) {
	type out struct {
		d    *dialog
		cseq uint32
	}
	var to []out
	f.sip.mu.Lock()
	for _, d := range f.sip.dialogs {
		if d.meeting == id && !d.subscription && d.confirmed && in[d.pid] {
			d.cseq++
			to = append(to, out{d, d.cseq})
		}
	}
	f.sip.mu.Unlock()
	body := []byte(msg.Name + ": " + msg.Text)
	for _, o := range to {
		f.goRun(func() {
			req := sip.NewRequest(sip.MESSAGE, o.d.target)
			inDialogRequest(req, o.d, o.cseq)
			req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=utf-8"))
			req.SetBody(body)
			f.send(req, o.d)
		})
	}
}

// handleMessage takes a SIP participant's chat message: a MESSAGE with
// text/plain on its INVITE dialog.
func (f *Focus) handleMessage(req *sip.Request, tx sip.ServerTransaction) {
	d := f.inDialog(req, tx, false)
	if d == nil {
		return
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ct.Value(), ";", 2)[0]), "text/plain") {
		res := sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
		res.AppendHeader(sip.NewHeader("Accept", "text/plain"))
		_ = tx.Respond(res)
		return
	}
	f.sip.mu.Lock()
	if d.chatLimit == nil {
		d.chatLimit = rate.NewLimiter(sipChatRate, sipChatBurst)
	}
	allowed := d.chatLimit.Allow()
	f.sip.mu.Unlock()
	if !allowed {
		res := sip.NewResponseFromRequest(req, 503, "Too Many Messages", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		_ = tx.Respond(res)
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, sipTimeout)
	defer cancel()
	switch _, err := f.Chat(ctx, d.meeting, d.pid, string(req.Body())); {
	case errors.Is(err, ErrChatText):
		reply(tx, req, 400, "Empty, Too Long Or Not UTF-8")
	case errors.Is(err, ErrChatNotIn), errors.Is(err, ErrNoParticipant):
		reply(tx, req, 403, "Not In The Meeting")
	case err != nil:
		reply(tx, req, 500, "Chat Failed")
	default:
		reply(tx, req, 200, "OK")
	}
}
