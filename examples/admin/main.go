// Command admin is the service or tenant admin's command line for the reference
// server's admin API (HTTPS, with the admin bearer token the server keeps
// in its data directory). It prints the server's JSON answers.
//
// Usage:
//
//	go run ./examples/admin [-https ADDR] [-ca FILE] [-token-file FILE] COMMAND [ARGS]
//
// Commands:
//
//	tenants                            list the tenants
//	tenant add DOMAIN [-name NAME]     a new tenant (service admin)
//	tenant delete DOMAIN               once it has no users (service admin)
//	users                              list the users
//	user show URI
//	user add URI [-name NAME] [-password-file FILE] [-license] [-disabled] [-password-sign-in]
//	user set URI [-name NAME] [-password-file FILE] [-enabled=BOOL] [-license=BOOL] [-password-sign-in=BOOL]
//	user delete URI
//	licenses                           who may organize meetings
//	federation                         the federation policy
//	federation open|closed
//	federation allow|block|forget DOMAIN...
//	partners                           the federation partners (service admin)
//	partner add DOMAIN [-edge HOST:PORT] [-ca FILE]   a partner, allowed at once; -edge: its Access Edge (default: DNS SRV), -ca: the PEM of its CA (default: the system's roots)
//	partner delete DOMAIN              a partner added here, blocked at once
//	cert issue URI [-days N] -out PREFIX   writes PREFIX.crt and PREFIX.key (0600)
//	cert revoked
//	cert revoke SERIAL [-reason NAME] [-cert FILE]   -cert: the certificate itself (a tenant admin must give it)
//	meetings ORGANIZER                 a user's meetings
//	meeting show ID                    a meeting and who is in it
//	meeting end ID                     end it for everyone and delete it
//	sessions                           who is signed in
//	signout URI                        close the user's connections
package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/parleyuc/parley/pki"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley-admin:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command line that makes no sense.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usage(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// client calls the admin API.
type client struct {
	base  string
	token string
	http  *http.Client
	out   io.Writer
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley-admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("https", "127.0.0.1:8443", "the server's HTTPS `address`")
	caFile := fs.String("ca", "parley-data/ca/ca.crt", "the CA certificate `file` to trust")
	serverName := fs.String("server-name", "localhost", "the `name` the server's certificate must have")
	tokenFile := fs.String("token-file", "parley-data/admin-token", "the admin bearer token's `file`, or the token file of a tenant admin's parley-client login (a provider's access token)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		return usage("no command (tenants, tenant, users, user, licenses, federation, partners, partner, cert, meetings, meeting, sessions, signout)")
	}
	token, err := readToken(*tokenFile)
	if err != nil {
		return fmt.Errorf("-token-file: %w", err)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return fmt.Errorf("-ca: %w", err)
	}
	certs, err := pki.ParseCertsPEM(pem)
	if err != nil || len(certs) == 0 {
		return fmt.Errorf("-ca %s: no certificate: %v", *caFile, err)
	}
	// The server's certificate is checked as every client checks it,
	// revocation included.
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{})
	if err != nil {
		return err
	}
	defer crls.Close()
	verifier, err := pki.NewVerifier(pki.VerifierConfig{Roots: poolOf(certs), CRLs: crls})
	if err != nil {
		return err
	}
	c := &client{base: "https://" + *addr + "/admin/v1", token: token, out: stdout,
		http: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLSConfig(nil, verifier, *serverName)}}}
	return c.command(fs.Arg(0), fs.Args()[1:])
}

// readToken reads the admin token file, or the token file parley-client
// login keeps (JSON with the provider's access token), for a tenant admin
// signed in with the identity provider. The client refreshes that file;
// an expired token is refused here rather than sent.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return strings.TrimSpace(string(data)), nil
	}
	var login struct {
		User        string    `json:"user"`
		AccessToken string    `json:"access_token"`
		Expiry      time.Time `json:"expiry"`
	}
	if err := json.Unmarshal(data, &login); err != nil || login.AccessToken == "" {
		return "", fmt.Errorf("%s: neither a token nor a parley-client token file", path)
	}
	if time.Now().After(login.Expiry) {
		return "", fmt.Errorf("%s: the access token of %s expired at %s; run parley-client login again (or any parley-client command, which refreshes it)",
			path, login.User, login.Expiry.Format(time.RFC3339))
	}
	return login.AccessToken, nil
}

// command runs one command.
func (c *client) command(name string, args []string) error {
	switch name {
	case "tenants":
		return c.call("GET", "/tenants", nil)
	case "tenant":
		return c.tenant(args)
	case "users":
		return c.call("GET", "/users", nil)
	case "licenses":
		return c.call("GET", "/licenses", nil)
	case "sessions":
		return c.call("GET", "/sessions", nil)
	case "user":
		return c.user(args)
	case "federation":
		return c.federation(args)
	case "partners":
		return c.call("GET", "/federation/partners", nil)
	case "partner":
		return c.partner(args)
	case "cert":
		return c.cert(args)
	case "meetings":
		if len(args) != 1 {
			return usage("meetings ORGANIZER")
		}
		return c.call("GET", "/meetings?organizer="+url.QueryEscape(args[0]), nil)
	case "meeting":
		if len(args) != 2 || (args[0] != "show" && args[0] != "end") {
			return usage("meeting show|end ID")
		}
		if args[0] == "end" {
			return c.call("DELETE", "/meetings/"+url.PathEscape(args[1]), nil)
		}
		return c.call("GET", "/meetings/"+url.PathEscape(args[1]), nil)
	case "signout":
		if len(args) != 1 {
			return usage("signout URI")
		}
		return c.call("DELETE", "/sessions/"+url.PathEscape(args[0]), nil)
	}
	return usage("unknown command %q", name)
}

func (c *client) tenant(args []string) error {
	if len(args) < 2 || (args[0] != "add" && args[0] != "delete") {
		return usage("tenant add|delete DOMAIN [-name NAME]")
	}
	if args[0] == "delete" {
		if len(args) != 2 {
			return usage("tenant delete DOMAIN")
		}
		return c.call("DELETE", "/tenants/"+url.PathEscape(args[1]), nil)
	}
	fs := flag.NewFlagSet("tenant add", flag.ContinueOnError)
	name := fs.String("name", "", "the organization's `name`")
	if err := fs.Parse(args[2:]); err != nil {
		return usageError{err.Error()}
	}
	return c.call("POST", "/tenants", map[string]any{"domain": args[1], "name": *name})
}

func (c *client) user(args []string) error {
	if len(args) < 2 {
		return usage("user show|add|set|delete URI [flags]")
	}
	verb, uri, rest := args[0], args[1], args[2:]
	path := "/users/" + url.PathEscape(uri)
	switch verb {
	case "show":
		return c.call("GET", path, nil)
	case "delete":
		return c.call("DELETE", path, nil)
	case "add", "set":
	default:
		return usage("user show|add|set|delete URI")
	}
	fs := flag.NewFlagSet("user "+verb, flag.ContinueOnError)
	name := fs.String("name", "", "display `name`")
	passwordFile := fs.String("password-file", "", "`file` whose first line is the password")
	license := fs.Bool("license", false, "the user may organize meetings")
	enabled := fs.Bool("enabled", true, "the user may sign in")
	disabled := fs.Bool("disabled", false, "add the user disabled")
	passwordSignIn := fs.Bool("password-sign-in", false, "the account may sign in with its password although the tenant signs in with its identity provider (a legacy phone, a gateway)")
	if err := fs.Parse(rest); err != nil {
		return usageError{err.Error()}
	}
	body := map[string]any{}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["name"] || verb == "add" {
		body["display_name"] = *name
	}
	if *passwordFile != "" {
		data, err := os.ReadFile(*passwordFile)
		if err != nil {
			return fmt.Errorf("-password-file: %w", err)
		}
		pw, _, _ := strings.Cut(string(data), "\n")
		body["password"] = strings.TrimSpace(pw)
	}
	if set["license"] || verb == "add" {
		body["meeting_license"] = *license
	}
	if set["password-sign-in"] {
		body["password_sign_in"] = *passwordSignIn
	}
	if verb == "add" {
		body["uri"] = uri
		body["enabled"] = !*disabled
		return c.call("POST", "/users", body)
	}
	if set["enabled"] {
		body["enabled"] = *enabled
	}
	return c.call("PATCH", path, body)
}

func (c *client) federation(args []string) error {
	if len(args) == 0 {
		return c.call("GET", "/federation", nil)
	}
	change := map[string]any{}
	switch verb := args[0]; verb {
	case "open", "closed":
		change["open"] = verb == "open"
	case "allow", "block", "forget":
		if len(args) < 2 {
			return usage("federation %s DOMAIN...", verb)
		}
		change[verb] = args[1:]
	default:
		return usage("federation [open|closed|allow|block|forget DOMAIN...]")
	}
	return c.call("POST", "/federation", change)
}

func (c *client) partner(args []string) error {
	if len(args) < 2 || (args[0] != "add" && args[0] != "delete") {
		return usage("partner add|delete DOMAIN [-edge HOST:PORT] [-ca FILE]")
	}
	if args[0] == "delete" {
		if len(args) != 2 {
			return usage("partner delete DOMAIN")
		}
		return c.call("DELETE", "/federation/partners/"+url.PathEscape(args[1]), nil)
	}
	fs := flag.NewFlagSet("partner add", flag.ContinueOnError)
	edge := fs.String("edge", "", "the partner's Access Edge, `host:port` (a name its certificate carries); default: found in DNS")
	caFile := fs.String("ca", "", "the PEM `file` of the partner's CA; default: the system's roots")
	if err := fs.Parse(args[2:]); err != nil {
		return usageError{err.Error()}
	}
	body := map[string]string{"domain": args[1], "edge": *edge}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		body["ca"] = string(pem)
	}
	return c.call("POST", "/federation/partners", body)
}

func (c *client) cert(args []string) error {
	if len(args) == 0 {
		return usage("cert issue|revoked|revoke")
	}
	switch args[0] {
	case "revoked":
		return c.call("GET", "/certificates/revoked", nil)
	case "revoke":
		fs := flag.NewFlagSet("cert revoke", flag.ContinueOnError)
		reason := fs.String("reason", "", "RFC 5280 `reason`, e.g. keyCompromise, superseded")
		certFile := fs.String("cert", "", "the certificate's PEM `file` (PREFIX.crt of cert issue): a tenant admin must give it")
		if len(args) < 2 {
			return usage("cert revoke SERIAL [-reason NAME] [-cert FILE]")
		}
		if err := fs.Parse(args[2:]); err != nil {
			return usageError{err.Error()}
		}
		body := map[string]string{"reason": *reason}
		if *certFile != "" {
			pem, err := os.ReadFile(*certFile)
			if err != nil {
				return fmt.Errorf("-cert: %w", err)
			}
			body["certificate"] = string(pem)
		}
		return c.call("POST", "/certificates/"+url.PathEscape(args[1])+"/revoke", body)
	case "issue":
		fs := flag.NewFlagSet("cert issue", flag.ContinueOnError)
		days := fs.Int("days", 0, "validity in `days` (0: the server's default)")
		out := fs.String("out", "", "write `PREFIX`.crt and PREFIX.key")
		if len(args) < 2 {
			return usage("cert issue URI -out PREFIX [-days N]")
		}
		if err := fs.Parse(args[2:]); err != nil {
			return usageError{err.Error()}
		}
		if *out == "" {
			return usage("cert issue needs -out PREFIX: the private key goes to a file, not the terminal")
		}
		var issued struct {
			Serial      string `json:"serial"`
			Certificate string `json:"certificate"`
			PrivateKey  string `json:"private_key"`
		}
		if err := c.do("POST", "/certificates", map[string]any{"uri": args[1], "days": *days}, &issued); err != nil {
			return err
		}
		if err := os.WriteFile(*out+".key", []byte(issued.PrivateKey), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(*out+".crt", []byte(issued.Certificate), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "issued %s: %s.crt, %s.key\n", issued.Serial, *out, *out)
		return nil
	}
	return usage("cert issue|revoked|revoke")
}

// call sends a request and prints the answer's JSON, indented.
func (c *client) call(method, path string, body any) error {
	var v any
	if err := c.do(method, path, body, &v); err != nil {
		return err
	}
	if v == nil {
		return nil // 204
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	_, err := fmt.Fprintf(c.out, "%s\n", out)
	return err
}

// do sends a request with the token and decodes a JSON answer into v; an
// answer of 400 or more is an error with the server's message.
func (c *client) do(method, path string, body, v any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode >= 400 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(data)))
	}
	if res.StatusCode == http.StatusNoContent || len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, v)
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
