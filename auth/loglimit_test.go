package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var buf bytes.Buffer
	h, err := NewLogLimiter(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}),
		LogLimits{MaxValue: 32, PerMessage: Limit{Rate: 1, Burst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h).With("peer", strings.Repeat("p", 100))
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	emit := func(level slog.Level, msg string, args ...any) {
		r := slog.NewRecord(at, level, msg, 0)
		r.Add(args...)
		_ = log.Handler().Handle(context.Background(), r)
	}
	for range 5 {
		emit(slog.LevelError, "failed to parse", "data", strings.Repeat("x", 16<<10), "error", errors.New(strings.Repeat("e", 100)))
	}
	at = at.Add(time.Second)
	emit(slog.LevelError, "failed to parse", "data", "short")
	emit(slog.LevelInfo, "participant joined", "meeting", "m1")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 2 of the burst, 1 a second later, 1 of another message:\n%s", len(lines), buf.String())
	}
	for _, l := range lines[:3] {
		if !strings.Contains(l, "level=WARN") || len(l) > 400 {
			t.Fatalf("bad input must be at WARN and cut: %s", l)
		}
	}
	if !strings.Contains(lines[0], "…(16384 bytes)") || !strings.Contains(lines[0], "…(100 bytes)") {
		t.Fatalf("cut values must say how long they were: %s", lines[0])
	}
	if !strings.Contains(lines[2], "dropped=3") {
		t.Fatalf("the next line written must count those dropped: %s", lines[2])
	}
	if !strings.Contains(lines[3], "level=INFO") || !strings.Contains(lines[3], "meeting=m1") {
		t.Fatalf("other messages pass as they are: %s", lines[3])
	}
	for _, bad := range []LogLimits{{MaxValue: 3}, {PerMessage: Limit{Rate: -1, Burst: 1}}, {MaxMessages: -1}} {
		if _, err := NewLogLimiter(slog.DiscardHandler, bad); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}

func ExampleNewLogLimiter() {
	h, _ := NewLogLimiter(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}), LogLimits{MaxValue: 16})
	logger := slog.New(h)
	// sipgo logs a malformed message at ERROR with its raw bytes.
	logger.Error("failed to parse", "data", "INVITE "+strings.Repeat("A", 1000))
	// Output:
	// level=WARN msg="failed to parse" data="INVITE AAAAAAAAA…(1007 bytes)"
}
