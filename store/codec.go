package store

import (
	"encoding/json"
	"fmt"
)

// Records are stored as JSON, in bbolt and in Redis alike.

// decode reads a stored record; a record that does not decode is an error
// naming it (what), never a zero value.
func decode[T any](raw []byte, what string) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("store: %s unreadable: %w", what, err)
	}
	return v, nil
}
