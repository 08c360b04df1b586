// Package configtest checks constructors the way every package's
// construction tests do: a build must not panic, a valid config is
// accepted, and an invalid one is refused with an error naming the field.
package configtest

import (
	"strings"
	"testing"
)

// Check runs build and fails t if it panics, if field is empty and build
// fails, or if field is set and build succeeds or its error does not name
// field.
func Check(t testing.TB, field string, build func() error) {
	t.Helper()
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panicked: %v", r)
			}
		}()
		err = build()
	}()
	switch {
	case field == "" && err != nil:
		t.Fatalf("valid config refused: %v", err)
	case field != "" && err == nil:
		t.Fatalf("accepted; want an error naming %s", field)
	case field != "" && !strings.Contains(err.Error(), field):
		t.Fatalf("error %q does not name %s", err, field)
	}
}
