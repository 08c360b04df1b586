package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/parleyuc/parley/parleytest"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestConfigFile: a server configured by a file alone starts where the
// file says and logs as it says; a flag given overrides the file, and an
// address without a host takes the -listen host.
func TestConfigFile(t *testing.T) {
	data := t.TempDir()
	conf := map[string]any{
		"data": data, "listen": "127.0.0.1",
		"http": ":0", "https": ":0", "sip_tls": ":0", "sip_wss": ":0", "edge": ":0", "edge_users": ":0",
		"turn": ":0", "turns": ":0", "media": ":0",
		"log": map[string]string{"format": "json", "level": "debug"},
	}
	body, _ := json.Marshal(conf)
	path := filepath.Join(t.TempDir(), "parley.json")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, data, []string{"-config", path})
	for name, addr := range s.listeners {
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("listener %s on %s", name, addr)
		}
	}
	s.logs.WaitFor(t, `"msg":"parley started"`, 5*time.Second)
	// Some work for the components: a sign-in, a meeting joined.
	alice := s.sipUser(t, "alice", s.passwords["sip:alice@example.test"], "localhost")
	m := s.schedule(t, "alice", `{}`)
	if res, err := alice.do(alice.request(sip.INVITE, m.Focus, sip.NewHeader("Contact", "<sip:alice-dev@127.0.0.1;transport=tls>"))); err != nil || res.StatusCode != 200 {
		t.Fatalf("alice joins: %v %v", res, err)
	}
	s.logs.WaitFor(t, `"msg":"participant joined"`, 5*time.Second)
	if !strings.Contains(s.logs.String(), `"level":"DEBUG"`) {
		t.Fatalf("no debug lines in JSON:\n%.2000s", s.logs.String())
	}
	// Every component logs through the configured handler: every line is
	// one JSON object.
	for line := range strings.Lines(s.logs.String()) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("a log line that is not JSON: %q", line)
		}
	}

	// The command line wins over the file.
	c, err := parseConfig([]string{"-config", path, "-log-format", "text", "-sip-tls", ":5999", "-listen", "::1"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Format != "text" || c.Log.Level != "debug" || c.SIPTLS != "[::1]:5999" || c.HTTPS != "[::1]:0" || c.Data != data {
		t.Fatalf("config %+v", c)
	}
	// And the defaults stay where neither says anything.
	c, err = parseConfig(nil, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.SIPTLS != "127.0.0.1:5061" || c.Store != "bolt" || c.Log.Format != "text" || c.Pool != "" {
		t.Fatalf("defaults %+v", c)
	}
}

// TestConfigLimits: the connection limits come from the file or the
// flags, and a bad one is named by its field and flag.
func TestConfigLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.json")
	body := `{"limits": {"handshake_timeout": "5s", "idle_timeout": "2h", "max_conns_per_address": 20, "wss_origins": ["https://meet.example.test"]}}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig([]string{"-config", path, "-max-conns", "500"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits.connLimits([]string{"https://localhost:8443"})
	if l.HandshakeTimeout != 5*time.Second || l.IdleTimeout != 2*time.Hour || l.MaxPerAddress != 20 || l.MaxConns != 500 ||
		l.MessageTimeout != 0 || len(l.Origins) != 1 || l.Origins[0] != "https://meet.example.test" {
		t.Fatalf("limits %+v", l)
	}
	if c, _ := parseConfig(nil, io.Discard); len(c.Limits.connLimits([]string{"https://localhost:8443"}).Origins) != 1 {
		t.Fatal("without wss_origins, the server's own HTTPS origins")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-idle-timeout", "-1s"}, `field "limits.idle_timeout" (-idle-timeout)`},
		{[]string{"-max-conns-per-address", "-3"}, `field "limits.max_conns_per_address" (-max-conns-per-address)`},
		{[]string{"-wss-origins", "meet.example.test"}, `field "limits.wss_origins" (-wss-origins)`},
	} {
		if _, err := parseConfig(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
	if err := os.WriteFile(path, []byte(`{"limits": {"message_timeout": 20}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig([]string{"-config", path}, io.Discard); err == nil || !strings.Contains(err.Error(), "message_timeout") {
		t.Fatalf("a number for a duration: %v", err)
	}
}

// TestConfigReferenceComplete: README's config reference lists every
// field of the config file, nested ones by their dotted path.
func TestConfigReferenceComplete(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(readme, []byte("#### Config reference"))
	if start < 0 {
		t.Fatal("README.md has no config reference")
	}
	ref := string(readme[start:])
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			if f.Anonymous && f.Tag.Get("json") == "" { // its fields are the file's, as encoding/json promotes them
				walk(prefix, f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			path := prefix + name
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[rateLimit]() {
				walk(path+".", f.Type)
				continue
			}
			if !strings.Contains(ref, "`"+path+"`") {
				t.Errorf("README.md's config reference does not list `%s`", path)
			}
		}
	}
	walk("", reflect.TypeFor[config]())
}

// TestConfigLimitRefusals: each new limit group's bad values are refused
// at start, naming the field.
func TestConfigLimitRefusals(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"limits": {"throttle": {"per_address": {"rate": -1, "burst": 5}}}}`, `field "limits.throttle.per_address.rate"`},
		{`{"limits": {"throttle": {"per_subnet": {"rate": 50}}}}`, `field "limits.throttle.per_subnet": give both`},
		{`{"limits": {"registration": {"min_expires": "2h", "max_expires": "1h"}}}`, `field "limits.registration.min_expires"`},
		{`{"limits": {"relay": {"port_min": 60000, "port_max": 50000}}}`, `field "limits.relay.port_min"`},
		{`{"limits": {"relay": {"port_min": 50000}}}`, `give both`},
		{`{"limits": {"relay": {"port_min": 50000, "port_max": 70000}}}`, `up to 65535`},
		{`{"limits": {"lobby": {"max": -2}}}`, `field "limits.lobby.max"`},
		{`{"limits": {"sip_read_buffer": 100}}`, `field "limits.sip_read_buffer" 100: want 1024 to 65535`},
		{`{"limits": {"sip_read_buffer": 70000}}`, `field "limits.sip_read_buffer" 70000`},
		{`{"limits": {"signaling": {"ticket_ttl": "-5s"}}}`, `field "limits.signaling.ticket_ttl"`},
		{`{"advertise": {"turn": "relay.example.com"}}`, `field "advertise.turn" "relay.example.com": want an IP address`},
		{`{"advertise": {"sip": "sip.example.com"}}`, `field "advertise.sip": no such listener`},
		{`{"advertise": {"https": "0.0.0.0:443"}}`, `unspecified`},
		{`{"public": "0.0.0.0"}`, `field "public" (-public) "0.0.0.0": an unspecified address`},
		{`{"public": "sip.example.com:5061"}`, `field "public" (-public)`},
		{`{"certificates": {"pool": {"cert": "a.crt", "key": "a.key"}}}`, `field "certificates.pool": not a listener`},
		{`{"certificates": {"https": {"cert": "a.crt"}}}`, `field "certificates.https": give both`},
	} {
		path := filepath.Join(t.TempDir(), "parley.json")
		if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := parseConfig([]string{"-config", path}, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %s", tc.body, err, tc.want)
		}
	}
}

// TestLimitsReachTheComponents: limits from the config file are the
// ones the registrar and the relay apply.
func TestLimitsReachTheComponents(t *testing.T) {
	data := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "parley.json")
	if err := os.WriteFile(cfgFile, []byte(`{"limits": {"registration": {"min_expires": "2h", "max_expires": "3h", "default_expires": "2h"},
		"relay": {"allocations_per_user": 1}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerArgs(t, data, append(allOnPortZero(data), "-config", cfgFile))
	alice, err := parleytest.Dial(parleytest.ClientConfig{Addr: s.listeners["sip-tls"], ServerName: "localhost", Verifier: s.verifier(t),
		Domain: demoDomain, User: "alice", Password: s.passwords["sip:alice@example.test"]})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.HangUp()
	var st *parleytest.StatusError
	if err := alice.SignIn(context.Background()); !errors.As(err, &st) || st.Code != 423 {
		t.Fatalf("a one-hour registration under a two-hour minimum: %v, want 423 Interval Too Brief", err)
	}

	c := relayCredentials(t, s, "alice", s.passwords["sip:alice@example.test"])
	allocate := func() error {
		_, _, err := turnAllocate(t, s, c)
		return err
	}
	if err := allocate(); err != nil {
		t.Fatalf("the first allocation: %v", err)
	}
	if err := allocate(); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("a second allocation over a quota of one: %v, want 486 Allocation Quota Reached", err)
	}
}
