// Package hmactoken makes and opens the signed tokens servers put in the
// routes they record (Record-Route flow tokens): fields joined, MACed with
// HMAC-SHA256 under a server's key (a 128-bit tag), in base64url, so a
// token can travel in a SIP URI parameter and only its maker can read it
// back as its own. Seal and Unseal do the same with AES-256-GCM, for
// tokens whose fields outsiders must not read either.
package hmactoken

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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

// Seal is Sign for tokens whose fields outsiders must not read either
// (addresses inside the network): AES-256-GCM under a 32-byte key, with a
// random nonce, as base64url. Unseal returns the n fields, or false if the
// token was not sealed with key or was changed.
func Seal(key []byte, fields ...string) string {
	aead, err := sealer(key)
	if err != nil {
		panic("hmactoken: Seal needs a 32-byte key")
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nil, nil, []byte(strings.Join(fields, sep)), nil))
}

// Unseal opens a token Seal made.
func Unseal(key []byte, tok string, n int) ([]string, bool) {
	aead, err := sealer(key)
	if err != nil {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, false
	}
	payload, err := aead.Open(nil, nil, raw, nil)
	if err != nil {
		return nil, false
	}
	fields := strings.Split(string(payload), sep)
	if len(fields) != n {
		return nil, false
	}
	return fields, true
}

func sealer(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("hmactoken: key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}
