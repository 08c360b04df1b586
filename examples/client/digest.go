package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// digestAuthorization answers a Digest challenge (RFC 7616) for SIP and
// HTTP alike: of the challenges a 401 or 407 carries, the first with
// algorithm SHA-256 and qop "auth", with nonce count 1 and a random
// cnonce (every request answers a fresh challenge). MD5 is never used:
// the server offers SHA-256 to every client but old baresip, and FIPS
// mode has no MD5. It returns the Authorization header's value.
func digestAuthorization(challenges []string, method, uri, username, password string) (string, error) {
	for _, c := range challenges {
		p, ok := parseChallenge(c)
		if !ok || !strings.EqualFold(p["algorithm"], "SHA-256") || !hasToken(p["qop"], "auth") {
			continue
		}
		var b [16]byte
		_, _ = rand.Read(b[:])
		cnonce := hex.EncodeToString(b[:])
		const nc = "00000001"
		ha1 := sha256Hex(username + ":" + p["realm"] + ":" + password)
		ha2 := sha256Hex(method + ":" + uri)
		response := sha256Hex(ha1 + ":" + p["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + ha2)
		out := fmt.Sprintf(`Digest username=%s, realm=%s, nonce=%s, uri=%s, algorithm=SHA-256, qop=auth, nc=%s, cnonce="%s", response="%s"`,
			quote(username), quote(p["realm"]), quote(p["nonce"]), quote(uri), nc, cnonce, response)
		if opaque, ok := p["opaque"]; ok {
			out += ", opaque=" + quote(opaque)
		}
		return out, nil
	}
	return "", errors.New("the server offers no Digest SHA-256 challenge with qop=auth")
}

// isStale reports whether any of the challenges says stale=true: the
// credentials were right but the nonce had expired (RFC 7616 section
// 3.3), so answering again is worth it.
func isStale(challenges []string) bool {
	for _, c := range challenges {
		if p, ok := parseChallenge(c); ok && strings.EqualFold(p["stale"], "true") {
			return true
		}
	}
	return false
}

// parseChallenge reads the parameters of a "Digest k=v, k="v", ..."
// challenge, keys in lower case.
func parseChallenge(s string) (map[string]string, bool) { return parseScheme(s, "Digest") }

// parseScheme reads the parameters of a challenge of the given scheme
// (Digest, Bearer), keys in lower case.
func parseScheme(s, want string) (map[string]string, bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	if !strings.EqualFold(scheme, want) {
		return nil, false
	}
	p := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, false
		}
		key = strings.ToLower(strings.TrimSpace(key))
		after = strings.TrimLeft(after, " \t")
		var val string
		if strings.HasPrefix(after, `"`) {
			// A quoted string: up to the closing quote, \ escaping.
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			if i == len(after) {
				return nil, false
			}
			val, after = b.String(), after[i+1:]
		} else {
			val, after, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
			after = "," + after
		}
		p[key] = val
		_, after, _ = strings.Cut(after, ",")
		rest = strings.TrimSpace(after)
	}
	return p, true
}

// hasToken reports whether a comma-separated list holds tok.
func hasToken(list, tok string) bool {
	for t := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// sha256Hex is the hex SHA-256 of s, Digest's H().
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// quote makes a quoted string (RFC 7230 section 3.2.6).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
