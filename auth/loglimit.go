package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// DefaultInputMessages are the messages sipgo (v1.7) logs, at ERROR, about
// what a peer sent or failed to send: a malformed message with its raw
// bytes, a connection that broke or timed out. Anyone can cause them, so
// they are not errors of the server: a LogLimiter logs them at WARN.
var DefaultInputMessages = map[string]slog.Level{
	"failed to parse":   slog.LevelWarn,
	"Read error":        slog.LevelWarn,
	"Got TCP error":     slog.LevelWarn,
	"Fail to upgrade":   slog.LevelWarn,
	"Read filter error": slog.LevelWarn,
}

// LogLimits configures a [LogLimiter]. Zero fields take the defaults.
type LogLimits struct {
	// MaxValue is the longest attribute value (a string, an error's text,
	// a Stringer's) and message kept, in bytes; a longer one is cut and
	// says how long it was. Default 512.
	MaxValue int
	// PerMessage limits how often records with the same level and
	// message are written; those over it are counted, and the next one
	// written says how many were dropped ("dropped"). Default 10 a
	// second, in bursts of 50: more than a server's own events of one kind
	// usually come to, far less than a flood.
	PerMessage Limit
	// Levels caps the level of records by message: a record whose message
	// is listed is written at that level at most. Nil: DefaultInputMessages.
	Levels map[string]slog.Level
	// MaxMessages bounds how many distinct messages are tracked; past it,
	// new messages share one limit. Default 1,000.
	MaxMessages int
}

// LogLimiter is a slog.Handler that keeps what attackers can make a
// server log small: it cuts long attribute values, limits how often each
// message is written, and lowers the level of messages about bad input
// (Levels). Wrap an application's handler with it and give the resulting
// logger to sipgo and to Parley's components:
//
//	logger := slog.New(auth.NewLogLimiter(slog.NewTextHandler(os.Stderr, nil), auth.LogLimits{}))
//
// It is safe for concurrent use.
type LogLimiter struct {
	next  slog.Handler
	state *logState
}

type logState struct {
	cfg      LogLimits
	mu       sync.Mutex
	msgs     map[logKey]*msgLimit
	overflow *msgLimit
}

type logKey struct {
	level slog.Level
	msg   string
}

type msgLimit struct {
	limiter *rate.Limiter
	dropped int
}

// NewLogLimiter returns a LogLimiter writing to next, or an error naming
// an invalid field.
func NewLogLimiter(next slog.Handler, cfg LogLimits) (*LogLimiter, error) {
	if next == nil {
		return nil, errors.New("auth: NewLogLimiter: next handler is nil")
	}
	if cfg.MaxValue == 0 {
		cfg.MaxValue = 512
	}
	if cfg.PerMessage == (Limit{}) {
		cfg.PerMessage = Limit{Rate: 10, Burst: 50}
	}
	if cfg.Levels == nil {
		cfg.Levels = DefaultInputMessages
	}
	if cfg.MaxMessages == 0 {
		cfg.MaxMessages = 1000
	}
	switch {
	case cfg.MaxValue < 16:
		return nil, errors.New("auth: LogLimits.MaxValue must be at least 16")
	case cfg.PerMessage.Rate <= 0 || cfg.PerMessage.Burst <= 0:
		return nil, errors.New("auth: LogLimits.PerMessage: Rate and Burst must be positive")
	case cfg.MaxMessages < 1:
		return nil, errors.New("auth: LogLimits.MaxMessages must be positive")
	}
	s := &logState{cfg: cfg, msgs: map[logKey]*msgLimit{}, overflow: newMsgLimit(cfg.PerMessage)}
	return &LogLimiter{next: next, state: s}, nil
}

func newMsgLimit(l Limit) *msgLimit {
	return &msgLimit{limiter: rate.NewLimiter(rate.Limit(l.Rate), l.Burst)}
}

// level is the level r is written at.
func (h *LogLimiter) level(l slog.Level, msg string) slog.Level {
	if capped, ok := h.state.cfg.Levels[msg]; ok && capped < l {
		return capped
	}
	return l
}

// Enabled reports whether the next handler takes records of this level;
// a record whose level Handle lowers is checked again there.
func (h *LogLimiter) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle writes r through the next handler, at its capped level, with its
// values cut, unless its message is over its rate.
func (h *LogLimiter) Handle(ctx context.Context, r slog.Record) error {
	level := h.level(r.Level, r.Message)
	if !h.next.Enabled(ctx, level) {
		return nil
	}
	dropped, ok := h.state.allow(logKey{level, r.Message}, r.Time)
	if !ok {
		return nil
	}
	out := slog.NewRecord(r.Time, level, h.cut(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.cutAttr(a))
		return true
	})
	if dropped > 0 {
		out.AddAttrs(slog.Int("dropped", dropped))
	}
	return h.next.Handle(ctx, out)
}

// WithAttrs returns a LogLimiter over next.WithAttrs, with the values cut,
// sharing this one's limits.
func (h *LogLimiter) WithAttrs(attrs []slog.Attr) slog.Handler {
	cut := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		cut[i] = h.cutAttr(a)
	}
	return &LogLimiter{next: h.next.WithAttrs(cut), state: h.state}
}

// WithGroup returns a LogLimiter over next.WithGroup, sharing this one's
// limits.
func (h *LogLimiter) WithGroup(name string) slog.Handler {
	return &LogLimiter{next: h.next.WithGroup(name), state: h.state}
}

// allow takes a token for key, returning how many of its records were
// dropped since the last one written.
func (s *logState) allow(key logKey, at time.Time) (dropped int, ok bool) {
	if at.IsZero() {
		at = time.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, found := s.msgs[key]
	if !found {
		if len(s.msgs) < s.cfg.MaxMessages {
			m = newMsgLimit(s.cfg.PerMessage)
			s.msgs[key] = m
		} else {
			m = s.overflow
		}
	}
	if !m.limiter.AllowN(at, 1) {
		m.dropped++
		return 0, false
	}
	dropped, m.dropped = m.dropped, 0
	return dropped, true
}

func (h *LogLimiter) cutAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > h.state.cfg.MaxValue {
			return slog.String(a.Key, h.cut(s))
		}
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = h.cutAttr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			return slog.Attr{Key: a.Key, Value: v}
		}
		if len(s) > h.state.cfg.MaxValue {
			return slog.String(a.Key, h.cut(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// cut shortens s to MaxValue bytes (at a character boundary), saying how
// long it was.
func (h *LogLimiter) cut(s string) string {
	max := h.state.cfg.MaxValue
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
