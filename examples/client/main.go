// Command parley-client is a command-line SIP client of a Parley server
// (examples/server), built on the SDK and meant for scripts as much as for
// a terminal: it signs in over TLS with Digest, publishes and watches
// presence, sends and receives instant messages, schedules and joins
// meetings (through the lobby, admitting guests), and uses the server's
// HTTPS API for contacts, privacy and relay credentials.
//
// Every event is one line on stdout, fields separated by one space and
// free text last; errors go to stderr. The exit status is 0 on success, 1
// on failure and 2 on a usage error. Run it without arguments for the
// usage, which lists the commands and their output lines.
//
//	go run ./examples/client -user alice online -watch bob
//	PARLEY_PASSWORD=... go run ./examples/client -user bob send alice hello
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// defaultDomain is the domain of a user or URI given without one: the
// demo tenant of examples/server.
const defaultDomain = "example.test"

// passwordEnv is the environment variable holding the password when no
// -password-file is given.
const passwordEnv = "PARLEY_PASSWORD"

// usageText is what -h prints.
const usageText = `usage: parley-client [flags] <command> [command flags] [arguments]

A SIP client of a Parley server (examples/server). Each event is one line
on stdout: fields separated by one space, free text last (control
characters in it become spaces). Errors go to stderr.

Flags:
  -sip ADDR[,ADDR...]  SIP over TLS address (default 127.0.0.1:5061; a remote
                       user or guest may use the server's -edge-users address,
                       with -server-name edge.example.test); the front ends of a
                       pool separated by commas: the first that answers is used,
                       and the next when it cannot be reached any more
  -https ADDR          HTTPS address (default 127.0.0.1:8443)
  -ca FILE             CA certificate to trust (default parley-data/ca/ca.crt,
                       which the server writes on first run and also serves at
                       http://127.0.0.1:8080/pki/ca.crt)
  -server-name NAME    name to verify on the server's certificate (default localhost)
  -user USER           who signs in: alice, alice@example.test or
                       sip:alice@example.test (the domain defaults to example.test)
  -password-file FILE  file whose first line is the password; otherwise the
                       PARLEY_PASSWORD environment variable (never a flag: it
                       would show in ps)
  -token-cache FILE    where login keeps the user's tokens (mode 0600; default
                       one file per user in the user's configuration directory,
                       e.g. ~/.config/parley-client/alice_at_example.test.token.json)
  -timeout D           time allowed for each request (default 10s)

A user who has run login signs in with the identity provider's access
token (refreshed before it expires) and needs no password; otherwise the
password signs in (Digest).

Commands:
  login [-issuer URL] [-client-id ID] [-scope S] [-provider-ca FILE] [-browser]
      Signs the user in at the organization's identity provider (the one
      the server's Bearer challenge names, unless -issuer) with the OAuth
      2.0 device flow: prints where to go and the code to enter, waits, and
      keeps the tokens (-token-cache). -browser uses the authorization code
      flow with PKCE and a loopback redirect instead. Output:
        login-code <user-code> <verification-uri>
        login-url <verification-uri-with-the-code>
        login-browser <url to open>      (-browser)
        logged-in <aor> <issuer>

  logout
      Forgets the user's tokens and revokes the refresh token at the
      provider, if it can. Output: revoked <issuer>, logged-out <aor>.

  online [-status S] [-note TEXT] [-watch URI,...] [-for D]
      Signs in, publishes presence (S: available, busy, away, dnd or
      offline; default available), watches the users listed, and prints
      events until -for elapses, "quit" is read, stdin ends (without -for;
      with -for only the commands end), or SIGINT/SIGTERM; then it ends its
      subscriptions and publication and signs out. Commands on stdin, one a
      line:
        status <status> [note...]
        send <to> <text...>
        watch <uri>
        quit
      Output:
        signed-in <aor>                 signed in and presence published
        message <from-aor> <text>       an instant message arrived
        presence <aor> <status> [<note>]  a watched user's status changed
        sent <to>                       a "send" command's message was delivered
        error <text>                    a command failed (the client goes on)

  send <to> <text...>
      Sends one instant message and prints "sent <to>"; exits 1 naming the
      SIP status (480 Temporarily Unavailable: not signed in) if refused.

  watch [-for D] [-count N] <uri>...
      Watches users' presence without registering or publishing; prints
      presence lines as online does; exits after N lines, after D, or on
      SIGINT/SIGTERM.

  schedule [-subject S] [-access organizer|company|organization|anyone] [-invite URI,...] [-lobby-dial-in]
      Schedules a meeting over HTTPS and prints it as the server returns it,
      JSON (id, focus, join_url, conference_key, dial_in_id, ...).

  meetings
      Prints the meetings the user organizes (JSON).

  join [-guest NAME [-key KEY]] [-admit-all] [-for D] <meeting ID | focus URI | join URL>
      Joins a meeting (signaling only, no media) and follows its roster,
      until -for elapses, "quit" is read, stdin ends (without -for), or
      SIGINT/SIGTERM; then leaves. A guest signs in with the meeting's
      conference key: -key, else the join URL's #key=, else the password
      (-password-file or PARLEY_PASSWORD, which keeps it out of ps).
      -admit-all admits everyone seen waiting in the lobby (leaders only).
      Commands on stdin: admit <participant-id> | quit. Output:
        redirected <host:port>             another front end of the pool hosts
                                           the meeting: joined there (302)
        host-lost <meeting-id>             the front end that hosted the meeting
                                           is gone (a BYE with Reason cause 503)
        connection-lost <host:port>        the connection to the server in use
                                           closed
        rejoining <meeting-id>             joining again after either (for up
                                           to 45 s), through the next -sip server
                                           if the connection closed
        lobby <meeting-id>                 waiting in the lobby
        joined <meeting-id>                in the meeting
        roster <participant-id> <status> <display name>
                                           a participant changed (status:
                                           connected, pending for the lobby,
                                           disconnected, ...)
        admitted <participant-id>          a participant was admitted
        left <meeting-id>                  out of the meeting
        error <text>                       a command failed (the client goes on)
      Exits 1 naming the SIP status if refused (403, 404, 480, 603 ...).

  contacts [list | add <uri> <level> | remove <uri>]
      Lists (JSON), adds or changes (level: blocked, external, colleague,
      workgroup or personal) or removes one of the user's contacts.

  privacy on|off
      Turns privacy mode on (only contacts see presence) or off.

  relay
      Prints relay (TURN) credentials (JSON: username, password, ttl, uris).

Exit status: 0 success, 1 failure, 2 usage error.
`

// main runs the client, stopping it on SIGINT or SIGTERM.
func main() {
	// sipgo logs its connections' bookkeeping through its default logger
	// (to stderr): not for a command line's user, whose errors come back
	// from the calls.
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// options are the global flags.
type options struct {
	sipAddr      string
	httpsAddr    string
	caFile       string
	serverName   string
	user         string
	passwordFile string
	tokenCache   string
	timeout      time.Duration
}

// sipServers are the servers of -sip: one address, or the front ends of
// a pool separated by commas, tried in order.
func (o options) sipServers() []string {
	var out []string
	for a := range strings.SplitSeq(o.sipAddr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// env is what a command runs with: the global options, the standard
// streams and the environment.
type env struct {
	opts   options
	stdin  io.Reader
	out    *printer
	stderr io.Writer
	getenv func(string) string
}

// command runs one command with its arguments (after the command name).
type command func(ctx context.Context, e *env, args []string) error

// run is the whole client: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, out: &printer{w: stdout}, stderr: stderr, getenv: getenv}
	fs := flag.NewFlagSet("parley-client", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the usage text below says it all
	fs.StringVar(&e.opts.sipAddr, "sip", "127.0.0.1:5061", "")
	fs.StringVar(&e.opts.httpsAddr, "https", "127.0.0.1:8443", "")
	fs.StringVar(&e.opts.caFile, "ca", "parley-data/ca/ca.crt", "")
	fs.StringVar(&e.opts.serverName, "server-name", "localhost", "")
	fs.StringVar(&e.opts.user, "user", "", "")
	fs.StringVar(&e.opts.passwordFile, "password-file", "", "")
	fs.StringVar(&e.opts.tokenCache, "token-cache", "", "")
	fs.DurationVar(&e.opts.timeout, "timeout", 10*time.Second, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return 0
		}
		fmt.Fprintf(stderr, "parley-client: %v\nRun parley-client -h for the usage.\n", err)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	if len(e.opts.sipServers()) == 0 {
		fmt.Fprintln(stderr, "parley-client: -sip: want host:port, or several separated by commas")
		return 2
	}
	if e.opts.timeout <= 0 {
		fmt.Fprintln(stderr, "parley-client: -timeout must be positive")
		return 2
	}
	commands := map[string]command{
		"online":   runOnline,
		"send":     runSend,
		"watch":    runWatch,
		"schedule": runSchedule,
		"meetings": runMeetings,
		"join":     runJoin,
		"contacts": runContacts,
		"privacy":  runPrivacy,
		"relay":    runRelay,
		"login":    runLogin,
		"logout":   runLogout,
	}
	name := fs.Arg(0)
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "parley-client: unknown command %q\nRun parley-client -h for the usage.\n", name)
		return 2
	}
	err := cmd(ctx, e, fs.Args()[1:])
	var uerr usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0 // the command's flag set printed its usage
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "parley-client: %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "parley-client: %s: %v\n", name, err)
		return 1
	}
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

// Error returns the mistake.
func (u usageError) Error() string { return u.msg }

// usagef makes a usage error.
func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// flagSet is a command's flags.
type flagSet struct {
	*flag.FlagSet
	e        *env
	synopsis string
}

// newFlags makes the flag set of a command; synopsis shows its
// arguments.
func newFlags(e *env, name, synopsis string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse words the errors
	return &flagSet{FlagSet: fs, e: e, synopsis: synopsis}
}

// parse parses the command's arguments. With -h it prints the command's
// usage and returns flag.ErrHelp; a mistake is a usage error.
func (f *flagSet) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(f.e.out.w, "usage: parley-client [flags] %s %s\n", f.Name(), f.synopsis)
		f.SetOutput(f.e.out.w)
		f.PrintDefaults()
		return err
	}
	return usagef("%v\nusage: parley-client [flags] %s %s", err, f.Name(), f.synopsis)
}

// identity is who the client acts as: a user of the directory, or a
// meeting guest.
type identity struct {
	aor         string       // sip:alice@example.test; sip:guest@anonymous.invalid for a guest
	displayName string       // a guest's name
	username    string       // the Digest user name
	password    string       // or a guest's conference key
	domain      string       // the domain of URIs given without one
	tokens      *tokenSource // set once the user has run login: Bearer instead of the password
}

// user is the signed-in user of -user, with the password.
func (e *env) user() (identity, error) {
	if e.opts.user == "" {
		return identity{}, usagef("-user is required")
	}
	aor, err := canonicalURI(e.opts.user, defaultDomain)
	if err != nil {
		return identity{}, usagef("-user %s: %v", e.opts.user, err)
	}
	name, domain, _ := strings.Cut(strings.TrimPrefix(aor, "sip:"), "@")
	tokens, err := e.loadTokens(aor)
	if err != nil {
		return identity{}, err
	}
	if tokens != nil {
		return identity{aor: aor, username: name, domain: domain, tokens: tokens}, nil
	}
	pw, err := e.password()
	if err != nil {
		return identity{}, err
	}
	return identity{aor: aor, username: name, password: pw, domain: domain}, nil
}

// password reads the first line of -password-file, or PARLEY_PASSWORD.
func (e *env) password() (string, error) {
	if e.opts.passwordFile != "" {
		data, err := os.ReadFile(e.opts.passwordFile)
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(data), "\n")
		if line = strings.TrimSuffix(line, "\r"); line == "" {
			return "", fmt.Errorf("-password-file %s: the first line is empty", e.opts.passwordFile)
		}
		return line, nil
	}
	if pw := e.getenv(passwordEnv); pw != "" {
		return pw, nil
	}
	return "", usagef("no password: give -password-file FILE or set %s", passwordEnv)
}

// canonicalURI makes a user's address of record from "bob", "bob@host" or
// a SIP URI, with domain for the first form.
func canonicalURI(s, domain string) (string, error) {
	if !strings.Contains(s, "@") && !strings.Contains(s, ":") {
		s += "@" + domain
	}
	return auth.CanonicalAOR(s)
}

// printer writes the lines of stdout, one at a time whichever goroutine
// prints.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

// line prints fields separated by one space; control characters in them
// (a message's newlines, an escape sequence) become spaces.
func (p *printer) line(fields ...string) {
	clean := make([]string, len(fields))
	for i, f := range fields {
		clean[i] = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, f)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, strings.Join(clean, " ")+"\n")
}

// lines reads stdin line by line until it ends or done is closed. The
// channel closes when stdin ends. A read in progress cannot be
// interrupted: when done closes during one, the goroutine ends with that
// read (or with the process, which is about to exit).
func lines(stdin io.Reader, done <-chan struct{}) <-chan string {
	ch := make(chan string)
	if stdin == nil {
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case ch <- strings.TrimSuffix(sc.Text(), "\r"):
			case <-done:
				return
			}
		}
	}()
	return ch
}

// withFor bounds ctx by d when d is set.
func withFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}
