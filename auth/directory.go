package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/parleyuc/parley/internal/atomicfile"
)

// Errors a Directory returns.
var (
	ErrUnknownUser   = errors.New("auth: unknown user")
	ErrUnknownTenant = errors.New("auth: unknown tenant")
	// ErrTenantNotEmpty is returned by DirectoryStore.RemoveTenant for a
	// tenant that still has users: they are removed first, each on its
	// own, so that each is signed out.
	ErrTenantNotEmpty = errors.New("auth: the tenant still has users")
)

// Tenant is an organization with its own SIP domain.
type Tenant struct {
	Domain string `json:"domain"` // the SIP domain, e.g. example.test; also the Digest realm
	Name   string `json:"name"`
	// PasswordSignIn keeps Digest sign-in for all the tenant's users
	// although an OpenID Connect provider signs them in (Config.OIDC,
	// OIDCProvider.Domains), for a migration. Without a provider for the
	// tenant, Digest is always allowed.
	PasswordSignIn bool `json:"password_sign_in,omitempty"`
}

// Phones are a user's telephone numbers (enhanced presence data).
type Phones struct {
	Work   string `json:"work,omitempty"`
	Mobile string `json:"mobile,omitempty"`
	Home   string `json:"home,omitempty"`
}

// User is a directory entry.
type User struct {
	// URI is the address of record, sip:user@tenant-domain.
	URI         string `json:"uri"`
	DisplayName string `json:"display_name"`
	Tenant      string `json:"tenant"` // the tenant's domain
	Enabled     bool   `json:"enabled"`
	// MeetingLicense allows the user to organize meetings.
	MeetingLicense bool `json:"meeting_license"`
	// PasswordSignIn allows Digest sign-in for this user although an
	// OpenID Connect provider signs in the tenant's users: for accounts
	// of devices that cannot do OAuth (legacy SIP phones, baresip) and of
	// gateways. An admin sets it per account.
	PasswordSignIn bool   `json:"password_sign_in,omitempty"`
	Title          string `json:"title,omitempty"`
	Company        string `json:"company,omitempty"`
	Email          string `json:"email,omitempty"`
	TimeZone       string `json:"time_zone,omitempty"`
	Phones         Phones `json:"phones,omitzero"`
	// Credentials are derived from the password by [User.SetPassword]; the
	// password itself is never stored.
	Credentials Credentials `json:"credentials,omitzero"`
}

// Credentials are what a directory keeps of a password.
//
// PBKDF2 is the password hash (PBKDF2-HMAC-SHA256, FIPS-approved) for
// checks where the password itself is presented. Digest cannot work from
// such a hash, so the Digest HA1 values H(user:realm:password) are kept as
// well, as SIP registrars do: they are password-equivalent for the realm,
// so a directory file must be protected like a key file.
type Credentials struct {
	PBKDF2    string `json:"pbkdf2,omitempty"`
	HA1SHA256 string `json:"ha1_sha256,omitempty"`
	HA1MD5    string `json:"ha1_md5,omitempty"`
}

// Username is the user part of the user's URI, the Digest username.
func (u *User) Username() string {
	user, _, _ := splitAOR(u.URI)
	return user
}

// SetPassword derives the user's credentials from password. The realm is
// the tenant's domain (the URI's domain if Tenant is not set yet).
func (u *User) SetPassword(password string) error {
	if password == "" {
		return errors.New("auth: empty password")
	}
	_, host, err := splitAOR(u.URI)
	if err != nil {
		return fmt.Errorf("auth: SetPassword: %w", err)
	}
	if u.Tenant == "" {
		u.Tenant = host
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	u.Credentials = Credentials{
		PBKDF2:    h,
		HA1SHA256: digestHA1(algSHA256, u.Username(), u.Tenant, password),
		HA1MD5:    digestHA1(algMD5, u.Username(), u.Tenant, password),
	}
	return nil
}

// PBKDF2 parameters for new hashes: 600,000 iterations of HMAC-SHA256
// (OWASP's recommendation), 16-byte salt, 32-byte key.
const (
	pbkdf2Iterations = 600_000
	pbkdf2SaltLen    = 16
	pbkdf2KeyLen     = 32
)

// HashPassword returns "pbkdf2-sha256$<iterations>$<salt>$<key>" (base64
// without padding) for password.
func HashPassword(password string) (string, error) {
	return hashPassword(password, pbkdf2Iterations)
}

func hashPassword(password string, iterations int) (string, error) {
	salt := make([]byte, pbkdf2SaltLen)
	_, _ = rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, pbkdf2KeyLen)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	b64 := base64.RawStdEncoding
	return "pbkdf2-sha256$" + strconv.Itoa(iterations) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key), nil
}

// VerifyPassword reports whether password matches a hash made by
// HashPassword, in constant time.
func VerifyPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[2])
	want, err2 := b64.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && hmac.Equal(got, want)
}

// Directory is where tenants and users are looked up. It is the seam to an
// application's own user store: implement it to back Parley with LDAP, a
// database or an identity provider's API. Implementations must be safe for
// concurrent use.
type Directory interface {
	// Tenant returns the tenant whose SIP domain is domain, or an error
	// wrapping ErrUnknownTenant.
	Tenant(ctx context.Context, domain string) (*Tenant, error)
	// User returns the user with address of record aor (with or without
	// the sip: scheme; the domain compares case-insensitively), or an error
	// wrapping ErrUnknownUser.
	User(ctx context.Context, aor string) (*User, error)
}

// MemoryDirectory is a Directory held in memory, loadable from and
// savable to a JSON file. It is safe for concurrent use.
type MemoryDirectory struct {
	mu      sync.RWMutex
	tenants map[string]Tenant
	users   map[string]User // by normalized AOR
}

// NewMemoryDirectory returns an empty directory.
func NewMemoryDirectory() *MemoryDirectory {
	return &MemoryDirectory{tenants: map[string]Tenant{}, users: map[string]User{}}
}

// directoryFile is the JSON form of a directory.
type directoryFile struct {
	Tenants []Tenant `json:"tenants"`
	Users   []User   `json:"users"`
}

// LoadDirectory reads a directory from a JSON file of the form
// {"tenants": [...], "users": [...]}. An invalid entry is an error naming
// it; unknown fields are refused, so a misspelt field is not silently
// ignored.
func LoadDirectory(path string) (*MemoryDirectory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: directory: %w", err)
	}
	// It holds Digest HA1s, password equivalents: refused when group or
	// others may read it, as a key file is.
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("auth: directory: %w", err)
	} else if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("auth: directory %s is mode %04o: it holds password equivalents (chmod 600 %s)", path, perm, path)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var f directoryFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("auth: directory %s: %w", path, err)
	}
	d := NewMemoryDirectory()
	for i, t := range f.Tenants {
		if err := d.PutTenant(t); err != nil {
			return nil, fmt.Errorf("auth: directory %s: tenants[%d]: %w", path, i, err)
		}
	}
	for i, u := range f.Users {
		if err := d.PutUser(u); err != nil {
			return nil, fmt.Errorf("auth: directory %s: users[%d]: %w", path, i, err)
		}
	}
	return d, nil
}

// Save writes the directory to path as JSON with mode 0600, atomically.
func (d *MemoryDirectory) Save(path string) error {
	d.mu.RLock()
	f := directoryFile{Tenants: []Tenant{}, Users: []User{}}
	for _, t := range d.tenants {
		f.Tenants = append(f.Tenants, t)
	}
	for _, u := range d.users {
		f.Users = append(f.Users, u)
	}
	d.mu.RUnlock()
	sortTenants(f.Tenants)
	slices.SortFunc(f.Users, func(a, b User) int { return strings.Compare(a.URI, b.URI) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("auth: save directory: %w", err)
	}
	return nil
}

// PutTenant adds or replaces a tenant.
func (d *MemoryDirectory) PutTenant(t Tenant) error {
	t, err := NormalizeTenant(t)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tenants[t.Domain] = t
	return nil
}

// PutUser adds or replaces a user. The user's tenant must exist and the
// URI must be in the tenant's domain.
func (d *MemoryDirectory) PutUser(u User) error {
	u, err := NormalizeUser(u)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[u.Tenant]; !ok {
		return fmt.Errorf("tenant: %w: %s", ErrUnknownTenant, u.Tenant)
	}
	d.users[u.URI] = u
	return nil
}

// DeleteUser removes the user aor. It returns an error wrapping
// ErrUnknownUser if there is none.
func (d *MemoryDirectory) DeleteUser(aor string) error {
	user, host, err := splitAOR(aor)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnknownUser, err)
	}
	key := "sip:" + user + "@" + host
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.users[key]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownUser, aor)
	}
	delete(d.users, key)
	return nil
}

// DeleteTenant removes the tenant domain. It returns an error wrapping
// ErrUnknownTenant if there is none, or ErrTenantNotEmpty if it still
// has users.
func (d *MemoryDirectory) DeleteTenant(domain string) error {
	domain = strings.ToLower(domain)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tenants[domain]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTenant, domain)
	}
	for _, u := range d.users {
		if u.Tenant == domain {
			return fmt.Errorf("%w: %s", ErrTenantNotEmpty, domain)
		}
	}
	delete(d.tenants, domain)
	return nil
}

// Tenant implements Directory.
func (d *MemoryDirectory) Tenant(_ context.Context, domain string) (*Tenant, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, ok := d.tenants[strings.ToLower(domain)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTenant, domain)
	}
	return &t, nil
}

// User implements Directory.
func (d *MemoryDirectory) User(_ context.Context, aor string) (*User, error) {
	user, host, err := splitAOR(aor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownUser, err)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.users["sip:"+user+"@"+host]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownUser, aor)
	}
	return &u, nil
}

// Users returns every user, sorted by URI.
func (d *MemoryDirectory) Users() []User {
	d.mu.RLock()
	out := make([]User, 0, len(d.users))
	for _, u := range d.users {
		out = append(out, u)
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.URI, b.URI) })
	return out
}

func sortTenants(ts []Tenant) {
	slices.SortFunc(ts, func(a, b Tenant) int { return strings.Compare(a.Domain, b.Domain) })
}

// CanonicalAOR returns the canonical form of an address of record,
// "sip:user@host" with the host in lower case and no port, parameters or
// display name, from "sip:", "sips:" (any case), bare "user@host" or
// name-addr input. Every package compares users in this form.
func CanonicalAOR(s string) (string, error) {
	user, host, err := splitAOR(s)
	if err != nil {
		return "", err
	}
	return "sip:" + user + "@" + host, nil
}

// splitAOR splits "sip:user@host", "sips:user@host", "user@host" or
// `"Name" <sip:user@host>` into user and lower-cased host, ignoring the
// port and URI parameters.
func splitAOR(aor string) (user, host string, err error) {
	s := strings.TrimSpace(aor)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, ':'); i >= 0 && (strings.EqualFold(s[:i], "sip") || strings.EqualFold(s[:i], "sips")) {
		s = s[i+1:]
	}
	if i := strings.IndexAny(s, ";?>"); i >= 0 {
		s = s[:i]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", fmt.Errorf("not an address of record: %q", aor)
	}
	user, host = s[:at], strings.ToLower(s[at+1:])
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			host = host[:end+1] // an IPv6 literal; drop a port after it
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i] // drop a port
	}
	if strings.ContainsAny(user, " \t\r\n\"<>:") || strings.ContainsAny(host, " \t\r\n\"<>@") || host == "" || host == "[]" {
		return "", "", fmt.Errorf("not an address of record: %q", aor)
	}
	return user, host, nil
}

// Digest algorithms (RFC 7616 section 6.1).
const (
	algSHA256 = "SHA-256"
	algMD5    = "MD5"
)

func digestHash(alg, s string) string {
	if alg == algMD5 {
		sum := md5.Sum([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func digestHA1(alg, user, realm, password string) string {
	return digestHash(alg, user+":"+realm+":"+password)
}
