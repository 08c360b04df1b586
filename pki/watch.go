package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"time"
)

// WatchConfig configures [KeyPair.Watch]. Every field is optional.
type WatchConfig struct {
	// Interval is how often the files are looked at. Default 2 seconds.
	Interval time.Duration
	// Check, if set, vets a changed certificate before it is presented
	// (for example: not expired, naming the server's host); its error
	// keeps the current one.
	Check func(leaf *x509.Certificate) error
	// OnReload is called after a changed certificate is presented.
	OnReload func(leaf *x509.Certificate)
	// OnError is called when changed files cannot be used (unreadable,
	// mismatched, refused by Check); the current certificate stays.
	// Each bad version of the files is reported once.
	OnError func(error)
}

// ErrNotFromFiles is returned by Reload and Watch for a KeyPair that was
// not loaded with [LoadKeyPair].
var ErrNotFromFiles = errors.New("pki: KeyPair was not loaded from files")

// Watch presents the KeyPair's files again whenever they change (a
// renewed certificate written over the old one, by a copy or a rename),
// without a restart: handshakes after the change get the new
// certificate, connections already established stay up. It reads the
// files every Interval until ctx is done and returns ctx's error; run it
// in a goroutine whose lifetime you own. A certificate and key written
// one after the other are taken once both match: until then the
// mismatch is reported (OnError) and the current pair stays.
func (k *KeyPair) Watch(ctx context.Context, cfg WatchConfig) error {
	if k.certFile == "" {
		return ErrNotFromFiles
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	last := k.fileDigest()
	var failed []byte // the digest last reported as unusable
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		d := k.fileDigest()
		if d == nil || bytes.Equal(d, last) || bytes.Equal(d, failed) {
			continue
		}
		next, err := LoadKeyPair(k.certFile, k.keyFile)
		if err == nil && cfg.Check != nil {
			err = cfg.Check(next.Certificate().Leaf)
		}
		if err == nil {
			err = k.Set(*next.Certificate())
		}
		if err != nil {
			failed = d
			if cfg.OnError != nil {
				cfg.OnError(err)
			}
			continue
		}
		last, failed = d, nil
		if cfg.OnReload != nil {
			cfg.OnReload(next.Certificate().Leaf)
		}
	}
}

// fileDigest is a SHA-256 over the certificate and key files' contents
// (nil when one cannot be read): a change of either is a new version.
func (k *KeyPair) fileDigest() []byte {
	h := sha256.New()
	for _, f := range []string{k.certFile, k.keyFile} {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil
		}
		h.Write(data)
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}
