package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parleyuc/parley/pki"
)

// certFiles are a certificate (PEM, chain included) and its key (PEM,
// mode 0600) of the operator's own, from another CA than the built-in
// one: an organization's PKI or a public CA.
type certFiles struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// ownCertListeners are the listeners that present an operator's own
// certificate (tls_cert, or certificates.<listener>): those users'
// clients and browsers reach. The Access Edge's federation listener and
// the pool present the built-in CA's certificates: they authenticate
// this server to the internal server and to the pool's front ends too,
// which trust that CA for it.
var ownCertListeners = []string{"https", "sip_tls", "sip_wss", "turns", "edge_users"}

// certExpiryWarning is how close to expiry an own certificate is logged
// at start and on each reload.
const certExpiryWarning = 30 * 24 * time.Hour

// checkCertificates validates the certificate fields: both files given,
// for listeners that take one.
func (c *config) checkCertificates() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("fields \"tls_cert\" (-tls-cert) and \"tls_key\" (-tls-key): give both, or neither")
	}
	fields := make([]string, 0, len(c.Certificates))
	for f := range c.Certificates {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		cf := c.Certificates[f]
		switch {
		case !slices.Contains(ownCertListeners, f):
			return fmt.Errorf("field \"certificates.%s\": not a listener that presents your own certificate (%s do)", f, strings.Join(ownCertListeners, ", "))
		case cf.Cert == "" || cf.Key == "":
			return fmt.Errorf("field \"certificates.%s\": give both cert and key", f)
		}
	}
	return nil
}

// ownCert is one of the operator's certificates: its files, the
// KeyPair the listeners present, and the names it must carry (the
// public host and the advertised hosts of the listeners presenting it).
type ownCert struct {
	kp    *pki.KeyPair
	file  string // the certificate's
	field string // the config field that names it
	names []string
	ips   []net.IP
}

// ownCertificates loads the operator's certificates, one per distinct
// pair of files, keyed by listener field (a listener without one is
// absent), each checked (checkOwnCertificate) against the names its
// listeners' clients reach the server by (public names the hosts of the
// given listeners).
func ownCertificates(c *config, public func(fields ...string) ([]string, []net.IP), logger *slog.Logger) (map[string]*ownCert, error) {
	byFiles := map[certFiles]*ownCert{}
	serves := map[certFiles][]string{}
	var order []certFiles
	for _, f := range ownCertListeners {
		cf, field := c.Certificates[f], "certificates."+f
		if cf.Cert == "" {
			cf, field = certFiles{c.TLSCert, c.TLSKey}, "tls_cert"
		}
		if cf.Cert == "" {
			continue
		}
		if byFiles[cf] == nil {
			byFiles[cf] = &ownCert{file: cf.Cert, field: field}
			order = append(order, cf)
		}
		serves[cf] = append(serves[cf], f)
	}
	out := map[string]*ownCert{}
	for _, cf := range order {
		oc := byFiles[cf]
		oc.names, oc.ips = public(serves[cf]...)
		kp, err := pki.LoadKeyPair(cf.Cert, cf.Key)
		if err != nil {
			return nil, fmt.Errorf("field %q %s: %w", oc.field, cf.Cert, err)
		}
		if err := checkOwnCertificate(kp.Certificate().Leaf, oc.names, oc.ips, time.Now()); err != nil {
			return nil, fmt.Errorf("field %q %s: %w", oc.field, cf.Cert, err)
		}
		warnOwnCertificate(logger, cf.Cert, kp.Certificate().Leaf)
		oc.kp = kp
		for _, f := range serves[cf] {
			out[f] = oc
		}
	}
	return out, nil
}

// checkOwnCertificate refuses what would fail every client: a
// certificate not yet or no longer valid, not for TLS servers, or not
// naming each host clients reach the server by (-public, "advertise").
func checkOwnCertificate(leaf *x509.Certificate, names []string, ips []net.IP, now time.Time) error {
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return fmt.Errorf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny):
		return errors.New("not a TLS server certificate (its extended key usage has no serverAuth)")
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return fmt.Errorf("does not name %s, which clients reach this server by (-public, advertise)", n)
		}
	}
	for _, ip := range ips {
		if err := leaf.VerifyHostname(ip.String()); err != nil {
			return fmt.Errorf("does not name %s, which clients reach this server by (-public, advertise)", ip)
		}
	}
	return nil
}

// warnOwnCertificate logs what will not stop the server but will bite:
// expiry within certExpiryWarning, and no CRL distribution point, without
// which Parley's own clients (examples/client, pki.Verifier), which
// check revocation, refuse it.
func warnOwnCertificate(logger *slog.Logger, file string, leaf *x509.Certificate) {
	if left := time.Until(leaf.NotAfter); left < certExpiryWarning {
		logger.Warn("certificate expires soon; write the renewed one over its files (it is reloaded)", "file", file,
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(leaf.CRLDistributionPoints) == 0 {
		logger.Warn("certificate has no CRL distribution point: clients that check revocation (examples/client, pki.Verifier) refuse it",
			"file", file)
	}
}

// watchCertificates returns, for each own certificate, a function that
// reloads it when its files change, with the start-up checks, until ctx
// is done.
func watchCertificates(ctx context.Context, own map[string]*ownCert, logger *slog.Logger) []func() {
	seen := map[*ownCert]bool{}
	var watchers []func()
	for _, oc := range own {
		if seen[oc] {
			continue
		}
		seen[oc] = true
		watchers = append(watchers, func() {
			_ = oc.kp.Watch(ctx, pki.WatchConfig{
				Check: func(leaf *x509.Certificate) error { return checkOwnCertificate(leaf, oc.names, oc.ips, time.Now()) },
				OnReload: func(leaf *x509.Certificate) {
					logger.Info("certificate reloaded", "file", oc.file, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.Text(16),
						"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
					warnOwnCertificate(logger, oc.file, leaf)
				},
				OnError: func(err error) {
					logger.Error("changed certificate files not used; the current certificate stays", "file", oc.file, "err", err)
				},
			})
		})
	}
	return watchers
}
