package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/presence"
)

// openDirectory returns the directory of tenants and users. With a
// store (bolt, redis) it is the store's: on its first start a
// directory.json in the data directory is imported into it (the file is
// an import format from then on); every front end of a pool shares the
// Redis one, so a user the admin API adds or disables on one front end
// is what the next sign-in on any of them sees. Without one (-store
// memory) it is the data directory's directory.json, saved on every
// change. The configured tenants are made if missing (applyTenants);
// with none configured, an empty directory gets the demo tenant, with
// users alice and bob, whose generated passwords are printed once to out
// and kept (mode 0600) in demo-passwords.txt for the newcomer who missed
// them.
func openDirectory(ctx context.Context, dataDir string, st auth.DirectoryStore, tenants []tenantConfig, out io.Writer, logger *slog.Logger) (auth.DirectoryStore, error) {
	path := filepath.Join(dataDir, directoryFile)
	file, err := auth.LoadDirectory(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	d := st
	empty := false
	if st == nil {
		fd := &fileDirectory{path: path, MemoryDirectory: file}
		if file == nil {
			fd.MemoryDirectory, empty = auth.NewMemoryDirectory(), true
		}
		d = fd
	} else {
		existing, err := st.ListTenants(ctx)
		switch {
		case err != nil:
			return nil, fmt.Errorf("directory: %w", err)
		case len(existing) > 0:
		case file != nil:
			if err := auth.Import(ctx, st, file); err != nil {
				return nil, err
			}
			logger.Info("directory imported into the store; the file is no longer read", "file", path, "users", len(file.Users()))
		default:
			empty = true
		}
	}
	if empty && len(tenants) == 0 {
		return d, createDemo(ctx, d, dataDir, out)
	}
	return d, applyTenants(ctx, d, tenants)
}

// createDemo creates the demo tenant in d.
func createDemo(ctx context.Context, d auth.DirectoryStore, dataDir string, out io.Writer) error {
	if err := d.SaveTenant(ctx, auth.Tenant{Domain: demoDomain, Name: "Example (demo)"}); err != nil {
		return err
	}
	var passwords string
	for _, u := range []auth.User{
		{URI: "sip:alice@" + demoDomain, DisplayName: "Alice Liddell", Title: "Engineer", Company: "Example", Email: "alice@" + demoDomain},
		{URI: "sip:bob@" + demoDomain, DisplayName: "Bob Builder", Title: "Manager", Company: "Example", Email: "bob@" + demoDomain},
	} {
		u.Enabled, u.MeetingLicense, u.Tenant = true, true, demoDomain
		pw := rand.Text() // 26 characters from crypto/rand, 130 bits
		if err := u.SetPassword(pw); err != nil {
			return err
		}
		if err := d.SaveUser(ctx, u); err != nil {
			return err
		}
		line := fmt.Sprintf("demo user %s password %s\n", u.URI, pw)
		passwords += line
		fmt.Fprint(out, line)
	}
	// The PSTN gateway that delivers dial-in callers: it signs in with a
	// client certificate from the CA naming this URI (-gateway), never a
	// password.
	if err := d.SaveUser(ctx, auth.User{URI: demoGateway, DisplayName: "PSTN gateway", Tenant: demoDomain, Enabled: true}); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, "demo-passwords.txt"), []byte(passwords), 0o600)
}

// fileDirectory is the directory of -store memory: a MemoryDirectory
// saved to its JSON file on every change, the change undone when the
// file cannot be written (nothing is lost, nothing half-done).
type fileDirectory struct {
	*auth.MemoryDirectory
	path string
	mu   sync.Mutex // a change and its save, one at a time
}

// SaveTenant implements auth.DirectoryStore.
func (d *fileDirectory) SaveTenant(ctx context.Context, t auth.Tenant) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, _ := d.Tenant(ctx, t.Domain)
	if err := d.PutTenant(t); err != nil {
		return err
	}
	return d.saveOr(func() {
		if old != nil {
			_ = d.PutTenant(*old)
		}
	})
}

// SaveUser implements auth.DirectoryStore.
func (d *fileDirectory) SaveUser(ctx context.Context, u auth.User) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, _ := d.User(ctx, u.URI)
	if err := d.PutUser(u); err != nil {
		return err
	}
	return d.saveOr(func() {
		if old != nil {
			_ = d.PutUser(*old)
		} else {
			_ = d.DeleteUser(u.URI)
		}
	})
}

// RemoveUser implements auth.DirectoryStore.
func (d *fileDirectory) RemoveUser(ctx context.Context, aor string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, err := d.User(ctx, aor)
	if err != nil {
		return err
	}
	if err := d.DeleteUser(aor); err != nil {
		return err
	}
	return d.saveOr(func() { _ = d.PutUser(*old) })
}

// RemoveTenant implements auth.DirectoryStore.
func (d *fileDirectory) RemoveTenant(ctx context.Context, domain string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, err := d.Tenant(ctx, domain)
	if err != nil {
		return err
	}
	if err := d.DeleteTenant(domain); err != nil {
		return err
	}
	return d.saveOr(func() { _ = d.PutTenant(*old) })
}

// saveOr writes the file, or runs undo and says why it could not.
func (d *fileDirectory) saveOr(undo func()) error {
	if err := d.Save(d.path); err != nil {
		undo()
		return fmt.Errorf("%w: %w", errNotSaved, err)
	}
	return nil
}

// errNotSaved is a directory change that could not be kept, and was
// undone.
var errNotSaved = errors.New("the directory could not be saved; nothing changed")

// follow calls fn with each item another front end of the pool
// announces on feed (withdrawn users, revoked certificates), and with ""
// when items may have been missed (a resubscription), until ctx is done;
// a feed that fails is listened to again after a second.
func follow(ctx context.Context, feed presence.Feed, logger *slog.Logger, what string, fn func(item string)) {
	for ctx.Err() == nil {
		err := feed.Listen(ctx, fn)
		if err != nil && ctx.Err() == nil {
			logger.Warn("a pool feed failed; listening again", "feed", what, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// poolLiveness is the store's record of which front ends of a pool are
// alive (store.Redis).
type poolLiveness interface {
	Heartbeat(ctx context.Context, node string, ttl time.Duration) error
	DeadNodes(ctx context.Context) ([]string, error)
	Advertise(ctx context.Context, node string, addrs map[string]string, ttl time.Duration) error
}

// A front end's heartbeat lasts nodeTimeout and is renewed every
// nodeBeat; every nodeBeat each front end also removes the registrations
// of the front ends whose heartbeat lapsed. A front end killed outright
// is seen offline by its users' watchers within nodeTimeout + nodeBeat
// (8 s).
const (
	nodeTimeout = 6 * time.Second
	nodeBeat    = 2 * time.Second
)

// meetingLeaseTTL is how long the lease of a front end hosting a live
// meeting lasts; the Focus renews it every third (~3.3 s). A hosting
// front end killed outright frees its meetings within meetingLeaseTTL:
// the next join through another front end makes that one the host.
const meetingLeaseTTL = 10 * time.Second

// keepPoolAlive beats this front end's heartbeat, advertises its addrs
// and removes what dead front ends held, until ctx is done.
func keepPoolAlive(ctx context.Context, live poolLiveness, node string, addrs map[string]string, registrar *presence.Registrar, logger *slog.Logger) {
	t := time.NewTicker(nodeBeat)
	defer t.Stop()
	for {
		if err := live.Heartbeat(ctx, node, nodeTimeout); err != nil {
			if ctx.Err() == nil {
				logger.Warn("pool heartbeat not written", "err", err)
			}
		} else if err := live.Advertise(ctx, node, addrs, nodeTimeout); err != nil && ctx.Err() == nil {
			// Its SIP-TLS and HTTPS addresses, where the others reach the
			// meetings it hosts (web joins are relayed to its HTTPS).
			logger.Warn("pool addresses not advertised", "err", err)
		}
		dead, err := live.DeadNodes(ctx)
		if err != nil && ctx.Err() == nil {
			logger.Warn("pool: dead front ends unknown", "err", err)
		}
		for _, n := range dead {
			if n == node {
				continue // this one's heartbeat lapsed (a pause): it beats again above
			}
			aors, err := registrar.RemoveNode(ctx, n)
			if err != nil && ctx.Err() == nil {
				logger.Warn("pool: a dead front end's registrations not removed", "node", n, "err", err)
				continue
			}
			logger.Info("pool: a front end died; its devices are signed out", "node", n, "users", len(aors))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
