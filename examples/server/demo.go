package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/pki"
)

// demoDomain is the tenant the server creates on first run.
const demoDomain = "example.test"

// directoryFile is the data directory's file of tenants and users.
const directoryFile = "directory.json"

// demoGateway is the demo tenant's PSTN gateway.
const demoGateway = "sip:gateway@" + demoDomain

// openDirectory loads the directory from the data directory, or on first
// run creates the demo tenant with users alice and bob, generates their
// passwords, prints them once to out and keeps them (mode 0600) in
// demo-passwords.txt for the newcomer who missed them.
func openDirectory(dataDir string, out io.Writer) (*auth.MemoryDirectory, error) {
	path := filepath.Join(dataDir, directoryFile)
	dir, err := auth.LoadDirectory(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return dir, err
	}
	dir = auth.NewMemoryDirectory()
	if err := dir.PutTenant(auth.Tenant{Domain: demoDomain, Name: "Example (demo)"}); err != nil {
		return nil, err
	}
	var passwords string
	for _, u := range []auth.User{
		{URI: "sip:alice@" + demoDomain, DisplayName: "Alice Liddell", Title: "Engineer", Company: "Example", Email: "alice@" + demoDomain},
		{URI: "sip:bob@" + demoDomain, DisplayName: "Bob Builder", Title: "Manager", Company: "Example", Email: "bob@" + demoDomain},
	} {
		u.Enabled, u.MeetingLicense, u.Tenant = true, true, demoDomain
		pw := rand.Text() // 26 characters from crypto/rand, 130 bits
		if err := u.SetPassword(pw); err != nil {
			return nil, err
		}
		if err := dir.PutUser(u); err != nil {
			return nil, err
		}
		line := fmt.Sprintf("demo user %s password %s\n", u.URI, pw)
		passwords += line
		fmt.Fprint(out, line)
	}
	// The PSTN gateway that delivers dial-in callers: it signs in with a
	// client certificate from the CA naming this URI (-gateway), never a
	// password.
	if err := dir.PutUser(auth.User{URI: demoGateway, DisplayName: "PSTN gateway", Tenant: demoDomain, Enabled: true}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dataDir, "demo-passwords.txt"), []byte(passwords), 0o600); err != nil {
		return nil, err
	}
	if err := dir.Save(path); err != nil {
		return nil, err
	}
	return dir, nil
}

// printBanner tells the newcomer, after the listening lines, where to go
// next: how to trust the demo CA, sign in, meet in the browser, and
// manage and watch the server.
func printBanner(out io.Writer, dataDir, httpAddr, https, sipAddr string) {
	caFile := filepath.Join(dataDir, "ca", pki.CACertFile)
	fmt.Fprintf(out, `
Parley is running. The demo tenant is %[1]s; its users' passwords are in %[2]s.
  trust the demo CA:  %[3]s (also at http://%[4]s/pki/ca.crt): import it in the browser, give it to clients
  sign in over SIP:   sip:alice@%[1]s at %[6]s over TLS: go run ./examples/client -user alice online (README: the tour)
  meet in a browser:  go run ./examples/client -user alice schedule, then open its join_url (%[5]s/meet/<id>)
  admin API:          %[5]s/admin/v1/ with the bearer token in %[7]s: go run ./examples/admin users
  monitoring:         http://%[4]s/metrics and http://%[4]s/healthz
`, demoDomain, filepath.Join(dataDir, "demo-passwords.txt"), caFile, httpAddr, https, sipAddr, filepath.Join(dataDir, adminTokenFile))
}
