// Package hmactoken makes and opens the signed tokens servers put in the
// routes they record (Record-Route flow tokens): fields joined, MACed with
// HMAC-SHA256 under a server's key (a 128-bit tag), in base64url, so a
// token can travel in a SIP URI parameter and only its maker can read it
// back as its own.
package hmactoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

const sep = "\x00"

// Sign returns a token carrying fields (which must not contain NUL).
func Sign(key []byte, fields ...string) string {
	payload := strings.Join(fields, sep)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(tag(key, []byte(payload)))
}

// Open returns the fields of tok if key signed it and it has n fields.
func Open(key []byte, tok string, n int) ([]string, bool) {
	p, mac, ok := strings.Cut(tok, ".")
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	sum, err2 := enc.DecodeString(mac)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(tag(key, payload), sum) {
		return nil, false
	}
	fields := strings.Split(string(payload), sep)
	if len(fields) != n {
		return nil, false
	}
	return fields, true
}

func tag(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)[:16]
}
