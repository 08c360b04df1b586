package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/presence"
)

// maxBody bounds what the client reads of an HTTPS answer.
const maxBody = 1 << 20

// api is the server's HTTPS API, signed in with HTTP Digest SHA-256
// (RFC 7616) as the user.
type api struct {
	base   string // https://<-https>
	id     identity
	client *http.Client
	trust  *trust
}

// newAPI makes the API client of the user of -user. Close releases it.
func newAPI(e *env) (*api, error) {
	id, err := e.user()
	if err != nil {
		return nil, err
	}
	t, err := newTrust(e)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: t.tls}
	return &api{base: "https://" + e.opts.httpsAddr, id: id, trust: t,
		client: &http.Client{Transport: tr, Timeout: e.opts.timeout}}, nil
}

// Close releases the connections and the CRL cache.
func (c *api) Close() {
	c.client.CloseIdleConnections()
	_ = c.trust.Close()
}

// call sends a request with a JSON body (none if body is nil) and returns
// the answer's body; an answer other than 2xx is an error naming the
// status and the server's message.
func (c *api) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	res, err := c.send(ctx, method, path, data, "")
	if err == nil && res.StatusCode == http.StatusUnauthorized {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBody)) // the connection serves the next request
		res.Body.Close()
		var authz string
		authz, err = c.id.credentials(ctx, res.Header.Values("WWW-Authenticate"), method, res.Request.URL.RequestURI())
		if err == nil {
			res, err = c.send(ctx, method, path, data, authz)
		}
	}
	if err != nil {
		return nil, connectionError(strings.TrimPrefix(c.base, "https://"), err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		serr := &statusError{code: res.StatusCode, reason: http.StatusText(res.StatusCode)}
		var msg struct{ Error string }
		if json.Unmarshal(out, &msg) == nil {
			serr.detail = msg.Error
		}
		return nil, serr
	}
	return out, nil
}

// send sends one request, with an Authorization header if authz is set.
func (c *api) send(ctx context.Context, method, path string, data []byte, authz string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("User-Agent", userAgent)
	return c.client.Do(req)
}

// printJSON prints a JSON answer indented, as the server sent it.
func printJSON(e *env, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	e.out.mu.Lock()
	defer e.out.mu.Unlock()
	_, err := e.out.w.Write(b.Bytes())
	return err
}

// apiCommand runs one request of a command with no flags of its own,
// printing the JSON answered.
func apiCommand(ctx context.Context, e *env, method, path string, body any) error {
	c, err := newAPI(e)
	if err != nil {
		return err
	}
	defer c.Close()
	out, err := c.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	return printJSON(e, out)
}

// noArgs parses a command that takes no arguments.
func noArgs(e *env, name string, args []string) error {
	fs := newFlags(e, name, "")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// runSchedule is the schedule command: POST /api/meetings.
func runSchedule(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "schedule", "[-subject S] [-access organizer|company|organization|anyone] [-invite URI,...] [-lobby-dial-in]")
	subject := fs.String("subject", "", "the meeting's `subject`")
	access := fs.String("access", "", "who enters without waiting in the lobby: `organizer`, company, organization or anyone (default: the server's)")
	invite := fs.String("invite", "", "comma-separated `URIs` of the invitees")
	lobbyDialIn := fs.Bool("lobby-dial-in", false, "send dial-in callers to the lobby too")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *access != "" {
		if _, err := conference.ParseAccessPolicy(*access); err != nil {
			return usagef("-access: %v", err)
		}
	}
	id, err := e.user()
	if err != nil {
		return err
	}
	var invitees []string
	for u := range strings.SplitSeq(*invite, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		aor, err := canonicalURI(u, id.domain)
		if err != nil {
			return usagef("-invite %s: %v", u, err)
		}
		invitees = append(invitees, aor)
	}
	body := struct {
		Subject     string   `json:"subject,omitempty"`
		Access      string   `json:"access,omitempty"`
		Invitees    []string `json:"invitees,omitempty"`
		DialInLobby bool     `json:"dial_in_lobby,omitempty"`
	}{*subject, *access, invitees, *lobbyDialIn}
	return apiCommand(ctx, e, http.MethodPost, "/api/meetings", body)
}

// runMeetings is the meetings command: GET /api/meetings.
func runMeetings(ctx context.Context, e *env, args []string) error {
	if err := noArgs(e, "meetings", args); err != nil {
		return err
	}
	return apiCommand(ctx, e, http.MethodGet, "/api/meetings", nil)
}

// runRelay is the relay command: GET /relay/credentials.
func runRelay(ctx context.Context, e *env, args []string) error {
	if err := noArgs(e, "relay", args); err != nil {
		return err
	}
	return apiCommand(ctx, e, http.MethodGet, "/relay/credentials", nil)
}

// runContacts is the contacts command: the settings API's contacts.
func runContacts(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "contacts", "[list | add <uri> <level> | remove <uri>]")
	if err := fs.parse(args); err != nil {
		return err
	}
	a := fs.Args()
	if len(a) == 0 {
		a = []string{"list"}
	}
	contact := func(uri string) (string, error) {
		id, err := e.user()
		if err != nil {
			return "", err
		}
		aor, err := canonicalURI(uri, id.domain)
		if err != nil {
			return "", usagef("%s: %v", uri, err)
		}
		return "/api/me/contacts/" + url.PathEscape(aor), nil
	}
	switch {
	case a[0] == "list" && len(a) == 1:
		return apiCommand(ctx, e, http.MethodGet, "/api/me/contacts", nil)
	case a[0] == "add" && len(a) == 3:
		if _, err := presence.ParseLevel(a[2]); err != nil {
			return usagef("level: %v", err)
		}
		path, err := contact(a[1])
		if err != nil {
			return err
		}
		return apiCommand(ctx, e, http.MethodPut, path, map[string]string{"level": a[2]})
	case a[0] == "remove" && len(a) == 2:
		path, err := contact(a[1])
		if err != nil {
			return err
		}
		return apiCommand(ctx, e, http.MethodDelete, path, nil)
	}
	return usagef("want contacts [list | add <uri> <level> | remove <uri>]")
}

// runPrivacy is the privacy command: PUT /api/me/privacy.
func runPrivacy(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "privacy", "on|off")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "on" && fs.Arg(0) != "off") {
		return usagef("want privacy on|off")
	}
	return apiCommand(ctx, e, http.MethodPut, "/api/me/privacy", map[string]bool{"privacy_mode": fs.Arg(0) == "on"})
}
