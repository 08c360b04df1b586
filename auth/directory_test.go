package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirectoryFileRoundTrip(t *testing.T) {
	d := testDirectory(t)
	path := filepath.Join(t.TempDir(), "directory.json")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("directory saved with mode %#o, want 0600 (it holds credentials)", fi.Mode().Perm())
	}
	back, err := LoadDirectory(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := back.User(context.Background(), "sip:alice@EXAMPLE.test")
	if err != nil || u.DisplayName != "Alice" || !u.Enabled || u.Credentials.HA1SHA256 == "" {
		t.Fatalf("alice after a round trip: %+v, %v", u, err)
	}
	if !VerifyPassword(u.Credentials.PBKDF2, alicePassword) || VerifyPassword(u.Credentials.PBKDF2, "wrong") {
		t.Fatal("PBKDF2 hash does not verify after a round trip")
	}
	if _, err := back.User(context.Background(), "sip:nobody@example.test"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := back.Tenant(context.Background(), "other.test"); !errors.Is(err, ErrUnknownTenant) {
		t.Fatalf("unknown tenant: %v", err)
	}
}

// TestLoadDirectoryRefusesALooseFile: a directory others may read gives
// away password equivalents.
func TestLoadDirectoryRefusesALooseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.json")
	if err := os.WriteFile(path, []byte(`{"tenants":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDirectory(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a directory file of mode 0644: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDirectory(path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDirectoryNamesTheBadEntry(t *testing.T) {
	tests := []struct{ name, json, says string }{
		{"misspelt field", `{"tenants":[{"domian":"x.test"}]}`, "domian"},
		{"user of an unknown tenant", `{"tenants":[],"users":[{"uri":"sip:a@x.test"}]}`, "users[0]"},
		{"user outside its tenant's domain", `{"tenants":[{"domain":"x.test"}],"users":[{"uri":"sip:a@y.test","tenant":"x.test"}]}`, "users[0]"},
		{"bad URI", `{"tenants":[{"domain":"x.test"}],"users":[{"uri":"not a uri"}]}`, "users[0]: uri"},
		{"bad domain", `{"tenants":[{"domain":"a@b"}]}`, "tenants[0]: domain"},
		{"not JSON", `tenants: []`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.json")
			_ = os.WriteFile(path, []byte(tt.json), 0o600)
			_, err := LoadDirectory(path)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v, want an error saying %q", err, tt.says)
			}
		})
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "pbkdf2-sha256$600000$") {
		t.Fatalf("hash %q does not use PBKDF2-SHA256 with 600,000 iterations", h)
	}
	if !VerifyPassword(h, "s3cret") {
		t.Fatal("the password does not verify against its hash")
	}
	cheap, _ := hashPassword("s3cret", 1000)
	if VerifyPassword(cheap, "s3cret ") || VerifyPassword(cheap, "") {
		t.Fatal("a wrong password verified")
	}
	for _, bad := range []string{"", "pbkdf2-sha256$x$a$b", "md5$1$a$b", "pbkdf2-sha256$0$AAAA$AAAA"} {
		if VerifyPassword(bad, "s3cret") {
			t.Fatalf("malformed hash %q verified", bad)
		}
	}
	u := User{URI: "sip:dave@example.test", Tenant: "example.test"}
	if err := u.SetPassword("pw"); err != nil {
		t.Fatal(err)
	}
	if u.Credentials.HA1SHA256 != digestHA1(algSHA256, "dave", "example.test", "pw") || u.Credentials.HA1MD5 == "" {
		t.Fatal("SetPassword did not derive the Digest HA1 values for the tenant realm")
	}
}

func TestCanonicalAOR(t *testing.T) {
	for in, want := range map[string]string{
		"sip:alice@Example.TEST":                    "sip:alice@example.test",
		"SIP:alice@example.test;transport=tls":      "sip:alice@example.test",
		"sips:alice@example.test:5061":              "sip:alice@example.test",
		`"Alice A." <sip:alice@example.test>;tag=1`: "sip:alice@example.test",
		"alice@example.test":                        "sip:alice@example.test",
		"sip:alice@[2001:DB8::1]:5061":              "sip:alice@[2001:db8::1]",
		"sip:a@b@example.test":                      "sip:a@b@example.test",
	} {
		got, err := CanonicalAOR(in)
		if err != nil || got != want {
			t.Errorf("CanonicalAOR(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "sip:example.test", "sip:@example.test", "sip:alice@", "tel:+15551234", "sip:a b@x"} {
		if got, err := CanonicalAOR(bad); err == nil {
			t.Errorf("CanonicalAOR(%q) = %q, want an error", bad, got)
		}
	}
}

func TestDeleteUser(t *testing.T) {
	d := NewMemoryDirectory()
	if err := d.PutTenant(Tenant{Domain: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := d.PutUser(User{URI: "sip:carol@example.test", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser("sips:carol@EXAMPLE.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.User(context.Background(), "sip:carol@example.test"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("deleted user: %v", err)
	}
	if err := d.DeleteUser("sip:carol@example.test"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("deleting again: %v", err)
	}
}
