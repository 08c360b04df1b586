package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

// signingKey is one key of the provider's key set.
type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

// keyRing holds the current signing key; rotation replaces it and stops
// publishing the old one, so tokens signed with it no longer verify.
type keyRing struct {
	alg jose.SignatureAlgorithm
	mu  sync.Mutex
	cur *signingKey
}

func newKeyRing(alg string) (*keyRing, error) {
	r := &keyRing{alg: jose.SignatureAlgorithm(alg)}
	return r, r.rotate()
}

func (r *keyRing) rotate() error {
	var k crypto.Signer
	var err error
	if r.alg == jose.RS256 {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return err
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	r.mu.Lock()
	r.cur = &signingKey{id: hex.EncodeToString(id), alg: r.alg, key: k}
	r.mu.Unlock()
	return nil
}

func (r *keyRing) current() *signingKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// jwks is the published key set.
func (r *keyRing) jwks() jose.JSONWebKeySet {
	k := r.current()
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.key.Public(), KeyID: k.id, Algorithm: string(k.alg), Use: "sig"}}}
}

// sign makes a compact JWS of claims with the current key.
func (r *keyRing) sign(claims map[string]any, typ string) (string, error) {
	k := r.current()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// verify checks a token this provider signed with its current key and
// returns its claims.
func (r *keyRing) verify(raw string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{r.alg})
	if err != nil {
		return nil, err
	}
	k := r.current()
	payload, err := jws.Verify(k.key.Public())
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}
