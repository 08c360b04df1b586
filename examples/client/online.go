package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// retryEvery is how often a client whose connection closed tries to sign
// in again.
const retryEvery = 5 * time.Second

// runOnline is the online command: signed in, present, watching, and
// taking commands from stdin.
func runOnline(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "online", "[-status S] [-note TEXT] [-watch URI,...] [-for D]")
	status := fs.String("status", "available", "presence `status`: available, busy, away, dnd or offline")
	note := fs.String("note", "", "presence note `text`")
	watchList := fs.String("watch", "", "comma-separated `URIs` of users whose presence to watch")
	stay := fs.Duration("for", 0, "stay online for this `duration` (default: until quit, the end of stdin or a signal)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	avail, err := parseStatus(*status)
	if err != nil {
		return usagef("-status: %v", err)
	}
	id, err := e.user()
	if err != nil {
		return err
	}
	var watched []string
	for u := range strings.SplitSeq(*watchList, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		aor, err := canonicalURI(u, id.domain)
		if err != nil {
			return usagef("-watch %s: %v", u, err)
		}
		watched = append(watched, aor)
	}

	a, err := newAgent(e, id)
	if err != nil {
		return err
	}
	defer a.Close()
	o := &online{e: e, a: a, id: id, reg: newRegistration(), pub: &publication{aor: id.aor, status: avail, note: *note},
		w: newWatcher(a, e.out, 0)}
	a.handle(sip.MESSAGE, handleMessage(e.out))

	ctx, cancel := withFor(ctx, *stay)
	defer cancel()
	if err := o.signIn(ctx); err != nil {
		return err
	}
	for _, aor := range watched {
		if _, err := o.w.watch(ctx, aor); err != nil {
			e.out.line("error", err.Error())
		}
	}
	return o.serve(ctx, *stay > 0)
}

// online is a signed-in session.
type online struct {
	e   *env
	a   *agent
	id  identity
	reg *registration
	pub *publication
	w   *watcher
}

// signIn publishes this device's presence, registers it, and says so.
// Publishing first, watchers see the published state at once, not a
// moment of "available" (a registered user with nothing published).
func (o *online) signIn(ctx context.Context) error {
	o.pub.etag = ""
	if _, err := o.a.publish(ctx, o.pub, refreshExpires, false); err != nil {
		return fmt.Errorf("sign in as %s: publish presence: %w", o.id.aor, err)
	}
	if _, err := o.a.register(ctx, o.reg, refreshExpires); err != nil {
		_, _ = o.a.publish(context.WithoutCancel(ctx), o.pub, 0, true)
		return fmt.Errorf("sign in as %s: %w", o.id.aor, err)
	}
	o.e.out.line("signed-in", o.id.aor)
	return nil
}

// serve takes commands and keeps the session alive until ctx ends, quit,
// or (unless untilDeadline) the end of stdin; then it signs out.
func (o *online) serve(ctx context.Context, untilDeadline bool) error {
	done := make(chan struct{})
	defer close(done)
	in := lines(o.e.stdin, done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	refreshAt := o.id.tokens.renewAt(time.Now(), time.Now().Add(refreshExpires/2))
	var lost bool
	var retryAt time.Time
	for {
		select {
		case <-ctx.Done():
			return o.signOut(ctx, lost)
		case line, ok := <-in:
			switch {
			case !ok && untilDeadline:
				in = nil // no more commands; stay until the deadline
			case !ok || o.command(ctx, line):
				return o.signOut(ctx, lost)
			}
		case now := <-tick.C:
			if !lost && !o.a.connected() {
				fmt.Fprintf(o.e.stderr, "parley-client: online: the connection to %s closed; signing in again\n", o.a.addr())
				o.a.reconnected()
				lost, retryAt = true, now
			}
			switch {
			case lost && !now.Before(retryAt):
				if err := o.signIn(ctx); err != nil {
					fmt.Fprintf(o.e.stderr, "parley-client: online: %v\n", err)
					retryAt = now.Add(retryEvery)
					continue
				}
				lost = false
				if err := o.w.resubscribe(ctx); err != nil {
					o.e.out.line("error", err.Error())
				}
				refreshAt = o.id.tokens.renewAt(now, now.Add(refreshExpires/2))
			case !lost && now.After(refreshAt):
				refreshAt = o.id.tokens.renewAt(now, now.Add(max(o.refresh(ctx)/2, 10*time.Second)))
			}
		}
	}
}

// refresh extends the registration, the publication and the
// subscriptions, and returns the shortest expiry granted.
func (o *online) refresh(ctx context.Context) time.Duration {
	shortest := refreshExpires
	if granted, err := o.a.register(ctx, o.reg, refreshExpires); err != nil {
		o.e.out.line("error", "refresh registration: "+err.Error())
	} else {
		shortest = min(shortest, granted)
	}
	if granted, err := o.a.publish(ctx, o.pub, refreshExpires, true); err != nil {
		o.e.out.line("error", "refresh publication: "+err.Error())
	} else {
		shortest = min(shortest, granted)
	}
	return min(shortest, o.w.refresh(ctx))
}

// command runs one line of stdin and reports whether it was quit.
func (o *online) command(ctx context.Context, line string) (quit bool) {
	name, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	rest = strings.TrimSpace(rest)
	switch name {
	case "":
	case "quit":
		return true
	case "status":
		word, note, _ := strings.Cut(rest, " ")
		avail, err := parseStatus(word)
		if err != nil {
			o.e.out.line("error", "status: "+err.Error())
			return false
		}
		o.pub.status, o.pub.note = avail, strings.TrimSpace(note)
		if _, err := o.a.publish(ctx, o.pub, refreshExpires, false); err != nil {
			o.e.out.line("error", "status: "+err.Error())
		}
	case "send":
		to, text, _ := strings.Cut(rest, " ")
		if to == "" || strings.TrimSpace(text) == "" {
			o.e.out.line("error", "send: want send <to> <text...>")
			return false
		}
		aor, err := canonicalURI(to, o.id.domain)
		if err == nil {
			err = o.a.message(ctx, aor, strings.TrimSpace(text))
		}
		if err != nil {
			o.e.out.line("error", "send "+to+": "+err.Error())
			return false
		}
		o.e.out.line("sent", aor)
	case "watch":
		aor, err := canonicalURI(rest, o.id.domain)
		if err == nil {
			_, err = o.w.watch(ctx, aor)
		}
		if err != nil {
			o.e.out.line("error", "watch: "+err.Error())
		}
	default:
		o.e.out.line("error", fmt.Sprintf("unknown command %q: want status, send, watch or quit", name))
	}
	return false
}

// signOut ends the subscriptions, removes the registration and the
// publication, even when ctx has ended; not if the connection was lost
// (the server signed the device out when it closed).
func (o *online) signOut(ctx context.Context, lost bool) error {
	if lost {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	o.w.stop(ctx)
	var errs []error
	// Signed out first: watchers see offline, not the status a device
	// without a publication has. The server drops what the device
	// published with its sign-out; the removal after it is for a server
	// that does not, and a 412 says the publication is gone already.
	if _, err := o.a.register(ctx, o.reg, 0); err != nil {
		errs = append(errs, fmt.Errorf("sign out: %w", err))
	}
	if o.pub.etag != "" {
		var st *statusError
		if _, err := o.a.publish(ctx, o.pub, 0, true); err != nil && !(errors.As(err, &st) && st.code == 412) {
			errs = append(errs, fmt.Errorf("remove publication: %w", err))
		}
	}
	return errors.Join(errs...)
}

// runSend is the send command: one instant message.
func runSend(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "send", "<to> <text...>")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usagef("want send <to> <text...>")
	}
	id, err := e.user()
	if err != nil {
		return err
	}
	to, err := canonicalURI(fs.Arg(0), id.domain)
	if err != nil {
		return usagef("%s: %v", fs.Arg(0), err)
	}
	a, err := newAgent(e, id)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.message(ctx, to, strings.Join(fs.Args()[1:], " ")); err != nil {
		return fmt.Errorf("to %s: %w", to, err)
	}
	e.out.line("sent", to)
	return nil
}

// runWatch is the watch command: presence lines, without registering.
func runWatch(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "watch", "[-for D] [-count N] <uri>...")
	stay := fs.Duration("for", 0, "watch for this `duration` (default: until a signal)")
	count := fs.Int("count", 0, "exit after `N` presence lines")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want watch [-for D] [-count N] <uri>...")
	}
	if *count < 0 {
		return usagef("-count must not be negative")
	}
	id, err := e.user()
	if err != nil {
		return err
	}
	var watched []string
	for _, u := range fs.Args() {
		aor, err := canonicalURI(u, id.domain)
		if err != nil {
			return usagef("%s: %v", u, err)
		}
		watched = append(watched, aor)
	}
	a, err := newAgent(e, id)
	if err != nil {
		return err
	}
	defer a.Close()
	w := newWatcher(a, e.out, *count)
	ctx, cancel := withFor(ctx, *stay)
	defer cancel()
	defer w.stop(context.WithoutCancel(ctx))
	for _, aor := range watched {
		if _, err := w.watch(ctx, aor); err != nil {
			return err
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	refreshAt := id.tokens.renewAt(time.Now(), time.Now().Add(refreshExpires/2))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.full:
			return nil
		case now := <-tick.C:
			if !a.connected() {
				return fmt.Errorf("the connection to %s closed", a.addr())
			}
			if now.After(refreshAt) {
				refreshAt = id.tokens.renewAt(now, now.Add(max(w.refresh(ctx)/2, 10*time.Second)))
			}
		}
	}
}
