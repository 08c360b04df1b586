//go:build !opus

package audio

import (
	"errors"
	"testing"
)

func TestNoOpus(t *testing.T) {
	if OpusBuilt {
		t.Fatal("OpusBuilt is true in a build without the opus tag")
	}
	if _, err := NewEncoder("opus"); !errors.Is(err, ErrNoOpus) {
		t.Errorf("NewEncoder(opus) = %v, want ErrNoOpus", err)
	}
	if _, err := NewDecoder("Opus"); !errors.Is(err, ErrNoOpus) {
		t.Errorf("NewDecoder(Opus) = %v, want ErrNoOpus", err)
	}
}
