package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parleyuc/parley/auth"
)

// config is the server's configuration: defaults, then the -config file,
// then the command line's flags, each overriding the one before. Its JSON
// names are the config file's fields; an address without a host takes
// the -listen host.
type config struct {
	// Listen is the host every listener binds unless its address names
	// one: 127.0.0.1 by default, so a first run is reachable from this
	// machine only.
	Listen string `json:"listen"`
	Data   string `json:"data"`
	// Public is the one host name or IP address clients reach this
	// server by, announced instead of the bound addresses (see network);
	// Advertise refines it per listener (by field name: "turn", "media",
	// "https", ...), as a host or host:port.
	Public    string            `json:"public"`
	Advertise map[string]string `json:"advertise"`
	// TLSCert and TLSKey are PEM files of the certificate (chain
	// included) and key every client-facing TLS listener presents
	// instead of one from the built-in CA; Certificates sets them per
	// listener. Both are checked at start and reloaded when they change
	// (see certFiles).
	TLSCert      string               `json:"tls_cert"`
	TLSKey       string               `json:"tls_key"`
	Certificates map[string]certFiles `json:"certificates"`

	HTTP      string `json:"http"`
	HTTPS     string `json:"https"`
	SIPTLS    string `json:"sip_tls"`
	SIPWSS    string `json:"sip_wss"`
	Edge      string `json:"edge"`
	EdgeUsers string `json:"edge_users"`
	TURN      string `json:"turn"`
	TURNS     string `json:"turns"`
	Media     string `json:"media"`
	Pool      string `json:"pool"`

	Store string `json:"store"`
	Redis string `json:"redis"`
	// RelayAllowLoopback lets the relay reach loopback peers, for a demo
	// where every client runs on this machine.
	RelayAllowLoopback bool `json:"relay_allow_loopback"`

	// Tenants are the organizations this server hosts, each with its own
	// SIP domain; made in the directory at start if missing (see
	// applyTenants). With none, and an empty directory, the demo tenant
	// is made instead.
	Tenants []tenantConfig `json:"tenants"`
	// Federation lists the partner organizations and where their edges
	// are (federation.go).
	Federation federationConfig `json:"federation"`

	DialIn  string `json:"dial_in"`
	Gateway string `json:"gateway"`

	Log logConfig `json:"log"`
	// Limits bounds the connections of the SIP listeners (sip_tls,
	// sip_wss, edge, edge_users, pool).
	Limits limitsConfig `json:"limits"`
	// oidcSettings are "oidc" and "admin_token_with_oidc": identity
	// providers (oidc.go).
	oidcSettings
}

// duration is a time.Duration written as Go writes one ("10s", "1h5m")
// in the config file.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[duration]()}
	}
	*d = duration(v)
	return nil
}

// httpsOrigins are the origins of this server's HTTPS listener: each
// name and address of its certificate, at the listener's port.
func httpsOrigins(leaf *x509.Certificate, https string) []string {
	_, port, _ := net.SplitHostPort(https)
	out := []string{"https://" + https}
	for _, n := range leaf.DNSNames {
		out = append(out, "https://"+net.JoinHostPort(n, port))
	}
	for _, ip := range leaf.IPAddresses {
		out = append(out, "https://"+net.JoinHostPort(ip.String(), port))
	}
	return out
}

// logConfig is how the server logs.
type logConfig struct {
	Format string `json:"format"` // text or json
	Level  string `json:"level"`  // debug, info, warn or error
}

// listener is one of the server's listeners: its flag, config field and
// address.
type listener struct {
	flag, field string
	addr        *string
	optional    bool // empty: not started
}

func (c *config) listeners() []listener {
	return []listener{
		{"http", "http", &c.HTTP, false}, {"https", "https", &c.HTTPS, false},
		{"sip-tls", "sip_tls", &c.SIPTLS, false}, {"sip-wss", "sip_wss", &c.SIPWSS, false},
		{"edge", "edge", &c.Edge, false}, {"edge-users", "edge_users", &c.EdgeUsers, false},
		{"turn", "turn", &c.TURN, false}, {"turns", "turns", &c.TURNS, false},
		{"media", "media", &c.Media, false}, {"pool", "pool", &c.Pool, true},
	}
}

// parseConfig reads the flags and the -config file they name.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	var file string
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&file, "config", "", "JSON config `file`: any setting below by its field name (listen, data, http, sip_tls, ..., log: {format, level}); flags override it")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1", "`host` every listener binds unless its own address names one")
	fs.StringVar(&c.Public, "public", "", "the `host` name or IP address clients reach this server by: relayed addresses, TURN URIs, ICE candidates, join links and certificates announce it (default: the bound addresses)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM `file`: your own certificate (chain included) for every client-facing TLS listener, instead of the built-in CA's; reloaded when it changes")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM `file`: the key of -tls-cert (mode 0600)")
	fs.StringVar(&c.Data, "data", "./parley-data", "data `directory`: CA, certificates and state (created on first run)")
	fs.StringVar(&c.HTTP, "http", ":8080", "plain HTTP `address`: the CRL distribution point, the CA certificate, /metrics and /healthz")
	fs.StringVar(&c.HTTPS, "https", ":8443", "HTTPS `address`: scheduling, join links, the web client and the admin API")
	fs.StringVar(&c.SIPTLS, "sip-tls", ":5061", "SIP over TLS `address`")
	fs.StringVar(&c.SIPWSS, "sip-wss", ":7443", "SIP over secure WebSocket (RFC 7118) `address`, for browsers")
	fs.StringVar(&c.Edge, "edge", ":5062", "Access Edge `address`: federated partners' SIP over mutual TLS")
	fs.StringVar(&c.EdgeUsers, "edge-users", ":5063", "Access Edge `address` for remote users and meeting guests, SIP over TLS")
	fs.StringVar(&c.TURN, "turn", ":3478", "TURN relay `address`, UDP and TCP")
	fs.StringVar(&c.TURNS, "turns", ":5349", "TURN over TLS `address`")
	fs.StringVar(&c.Media, "media", ":10000", "media bridge UDP `address`: ICE, DTLS and SRTP of every meeting's WebRTC participants")
	fs.StringVar(&c.Pool, "pool", "", "pool `address`: with -store redis, this front end's mutual TLS listener for the pool's other front ends")
	fs.BoolVar(&c.RelayAllowLoopback, "relay-allow-loopback", false, "let the relay reach loopback peers (a demo on one machine; never in production)")
	fs.StringVar(&c.Store, "store", "bolt", "where meetings, contacts and privacy settings are kept: `bolt` (parley.db in the data directory), memory, or redis (with -redis; registrations too, shared by front ends)")
	fs.StringVar(&c.Redis, "redis", "", "Redis `URL` for -store redis, e.g. redis://127.0.0.1:6379")
	fs.StringVar(&c.DialIn, "dial-in", "+15550100", "dial-in access `number`: the gateway delivers callers to sip:NUMBER@<domain>, where the IVR asks for the conference ID")
	fs.StringVar(&c.Gateway, "gateway", demoGateway, "the PSTN gateway's identity `URI`, as its client certificate from the CA names it; its callers are dial-in")
	fs.DurationVar((*time.Duration)(&c.Limits.HandshakeTimeout), "handshake-timeout", 0, "SIP listeners: `time` from accepting a connection to its first message (TLS handshake, WebSocket upgrade); 0: 10s")
	fs.DurationVar((*time.Duration)(&c.Limits.MessageTimeout), "message-timeout", 0, "SIP listeners: `time` one message may take to arrive once begun; 0: 20s")
	fs.DurationVar((*time.Duration)(&c.Limits.IdleTimeout), "idle-timeout", 0, "SIP listeners: a connection silent (no keep-alive either) this `long` is closed; 0: 65m")
	fs.IntVar(&c.Limits.MaxConnsPerAddress, "max-conns-per-address", 0, "SIP listeners: open connections per source `address` (IPv6: per /64); 0: 100")
	fs.IntVar(&c.Limits.MaxConns, "max-conns", 0, "SIP listeners: open connections per listener, `n`; 0: 10000")
	fs.IntVar(&c.Limits.MaxMessageSize, "max-message-size", 0, "SIP listeners: largest SIP message or WebSocket frame, in `bytes`; 0: 65535")
	fs.Func("wss-origins", "comma-separated `origins` (https://host:port) whose pages may open SIP over WebSocket; default: this server's HTTPS origins", func(v string) error {
		c.Limits.WSSOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.Limits.WSSOrigins = append(c.Limits.WSSOrigins, o)
			}
		}
		return nil
	})
	fs.StringVar(&c.Log.Format, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&c.Log.Level, "log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if file != "" {
		// The file overrides the defaults, then the flags given override
		// the file: set them again.
		given := map[string]string{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
		if err := readConfigFile(file, &c); err != nil {
			return c, err
		}
		for name, v := range given {
			_ = fs.Set(name, v) // it parsed once already
		}
	}
	if err := c.check(); err != nil {
		if file != "" {
			return c, fmt.Errorf("-config %s: %w", file, err)
		}
		return c, err
	}
	return c, nil
}

// readConfigFile decodes a JSON config file onto c: unknown fields, wrong
// types and syntax errors are refused with the field or the line named.
func readConfigFile(path string, c *config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(c)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON object")
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		want := typeErr.Type.String()
		if typeErr.Type == reflect.TypeFor[duration]() {
			want = `duration such as "10s"`
		}
		return fmt.Errorf("-config %s: field %q: want a %s, not a JSON %s", path, typeErr.Field, want, typeErr.Value)
	case errors.As(err, &syntaxErr):
		line := 1 + bytes.Count(data[:syntaxErr.Offset], []byte("\n"))
		return fmt.Errorf("-config %s: line %d: %v", path, line, syntaxErr)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("-config %s: unknown field %s", path, strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return fmt.Errorf("-config %s: %w", path, err)
	}
}

// check validates c, naming the field (and its flag) of the first
// problem, and gives addresses without a host the Listen host.
func (c *config) check() error {
	if c.Listen == "" || strings.ContainsAny(c.Listen, ":/ ") && !isIP(c.Listen) {
		return fmt.Errorf("field \"listen\" (-listen) %q: want a host name or IP address, without a port", c.Listen)
	}
	if c.Data == "" {
		return errors.New("field \"data\" (-data): empty")
	}
	for _, l := range c.listeners() {
		if *l.addr == "" && l.optional {
			continue
		}
		host, port, err := net.SplitHostPort(*l.addr)
		if err != nil {
			return fmt.Errorf("field %q (-%s) %q: %v", l.field, l.flag, *l.addr, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
			return fmt.Errorf("field %q (-%s) %q: port %q is not a number from 0 to 65535", l.field, l.flag, *l.addr, port)
		}
		if host == "" {
			*l.addr = net.JoinHostPort(c.Listen, port)
		}
	}
	switch {
	case c.Store != "bolt" && c.Store != "memory" && c.Store != "redis":
		return fmt.Errorf("field \"store\" (-store) %q: want bolt, memory or redis", c.Store)
	case c.Store == "redis" && c.Redis == "":
		return errors.New("field \"redis\" (-redis): -store redis needs a Redis URL")
	case c.Store != "redis" && c.Redis != "":
		return errors.New("field \"redis\" (-redis) is for -store redis")
	case c.Pool != "" && c.Store != "redis":
		return errors.New("field \"pool\" (-pool) needs -store redis: the front ends of a pool share it")
	case c.Log.Format != "text" && c.Log.Format != "json":
		return fmt.Errorf("field \"log.format\" (-log-format) %q: want text or json", c.Log.Format)
	}
	if err := checkTenants(c.Tenants); err != nil {
		return err
	}
	if err := c.Federation.check(c.Tenants); err != nil {
		return err
	}
	if err := c.Limits.check(); err != nil {
		return err
	}
	if err := c.checkAdvertise(); err != nil {
		return err
	}
	if err := c.checkCertificates(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return fmt.Errorf("field \"log.level\" (-log-level) %q: want debug, info, warn or error", c.Log.Level)
	}
	if c.DialIn == "" || strings.Trim(c.DialIn, "+0123456789") != "" {
		return fmt.Errorf("field \"dial_in\" (-dial-in) %q: want a telephone number, digits with an optional +", c.DialIn)
	}
	if _, err := auth.CanonicalAOR(c.Gateway); err != nil {
		return fmt.Errorf("field \"gateway\" (-gateway) %q: %v", c.Gateway, err)
	}
	return nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// logger is the server's slog.Logger, as the config says; every component
// logs through it, behind an auth.LogLimiter.
func (c *config) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level)) // checked
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// What peers can make the server log (malformed SIP with its bytes,
	// broken connections) is cut, rate-limited and logged at WARN.
	limited, _ := auth.NewLogLimiter(h, auth.LogLimits{}) // the defaults are valid
	return slog.New(limited)
}

// checkDataDir refuses, before anything listens, a data directory the
// server could not use or should not trust: not a directory, not
// readable, writable and searchable by the server, or writable by
// others. A missing one is created on first run.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	switch {
	case !fi.IsDir():
		return errors.New("not a directory")
	case perm&0o700 != 0o700:
		return fmt.Errorf("mode %04o: the server must read, write and enter it (chmod 700 %s)", perm, dir)
	case perm&0o022 != 0:
		return fmt.Errorf("mode %04o: others may write in it, where the CA key is (chmod 700 %s)", perm, dir)
	}
	if err := syscall.Access(dir, 0o7); err != nil { // R_OK|W_OK|X_OK, for this process's user
		return fmt.Errorf("the server cannot read and write it: %w", err)
	}
	return nil
}
