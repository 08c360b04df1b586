package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parleyuc/parley/pki"
)

// demoDomain is the tenant the server creates on first run.
const demoDomain = "example.test"

// directoryFile is the data directory's file of tenants and users.
const directoryFile = "directory.json"

// demoGateway is the demo tenant's PSTN gateway.
const demoGateway = "sip:gateway@" + demoDomain

// printBanner tells the newcomer, after the listening lines, where to go
// next: how to trust the demo CA, sign in, meet in the browser, and
// manage and watch the server.
func printBanner(out io.Writer, domains []string, dataDir, httpAddr, https, sipAddr string) {
	caFile := filepath.Join(dataDir, "ca", pki.CACertFile)
	if !slices.Contains(domains, demoDomain) {
		fmt.Fprintf(out, `
Parley is running for %[1]s.
  trust the CA:       %[2]s (also at http://%[3]s/pki/ca.crt), unless the listeners present your own certificates
  admin API:          %[4]s/admin/v1/ with the bearer token in %[5]s: go run ./examples/admin users
  monitoring:         http://%[3]s/metrics and http://%[3]s/healthz
`, strings.Join(domains, ", "), caFile, httpAddr, https, filepath.Join(dataDir, adminTokenFile))
		return
	}
	fmt.Fprintf(out, `
Parley is running. The demo tenant is %[1]s; its users' passwords are in %[2]s.
  trust the demo CA:  %[3]s (also at http://%[4]s/pki/ca.crt): import it in the browser, give it to clients
  sign in over SIP:   sip:alice@%[1]s at %[6]s over TLS: go run ./examples/client -user alice online (README: the tour)
  meet in a browser:  go run ./examples/client -user alice schedule, then open its join_url (%[5]s/meet/<id>)
  admin API:          %[5]s/admin/v1/ with the bearer token in %[7]s: go run ./examples/admin users
  monitoring:         http://%[4]s/metrics and http://%[4]s/healthz
`, demoDomain, filepath.Join(dataDir, "demo-passwords.txt"), caFile, httpAddr, https, sipAddr, filepath.Join(dataDir, adminTokenFile))
}
