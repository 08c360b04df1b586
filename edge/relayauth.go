package edge

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pion/stun"
	"github.com/pion/turn/v2"
)

// How the relay answers requests before pion/turn/v2 sees them (RFC 8656,
// RFC 8489 section 9.2.4), where pion alone answers wrongly or not at
// all:
//
//   - a request whose credential is refused (expired, claiming more than
//     MaxCredentialLifetime, malformed, of an unknown secret or another
//     realm) is handed to pion without its credentials, so that pion
//     answers 401 with its realm and a fresh nonce (pion alone answers
//     400, which clients do not retry);
//   - a request whose MESSAGE-INTEGRITY does not verify is dropped;
//   - a request with a stale nonce is left to pion (and to tcpRelays),
//     which answer 438 with a fresh nonce;
//   - a request on an allocation with another user's credentials gets
//     441, an Allocate past the user's quota 486, an Allocate over UDP
//     asking for a TCP relay 400;
//   - a CreatePermission or ChannelBind on a UDP allocation toward a peer
//     the filter refuses gets 403 (pion's permission hook can only say
//     no: CreatePermission is then answered without an ERROR-CODE, and
//     ChannelBind with 401, which sends clients into a re-authentication
//     loop).
//
// The relay's own answers to authenticated requests carry
// MESSAGE-INTEGRITY with the user's long-term key.

// verdict is what inspect decides about a message.
type verdict struct {
	reply []byte      // answer this instead of passing the message on
	pass  []byte      // pass this on instead of the message read
	alloc *allocating // the Allocate being made, its quota reserved
	drop  bool        // drop the message unanswered
}

// pion/turn/v2's nonces (internal/server/nonce.go) are the hex form of
// the Unix time in milliseconds (8 bytes) and an HMAC-SHA256 of it, and
// are stale after an hour.
const (
	pionNonceBytes    = 8 + 32
	pionNonceLifetime = time.Hour
)

// pionNonceFresh reports whether n has the form of pion's nonces and is
// younger than their lifetime. It does not check the HMAC: pion does. A
// nonce it calls stale fails pion's check for certain, so pion answers it
// 438.
func pionNonceFresh(n string, now time.Time) bool {
	b, err := hex.DecodeString(n)
	if err != nil || len(b) != pionNonceBytes {
		return false
	}
	issued := time.UnixMilli(int64(binary.BigEndian.Uint64(b)))
	return now.Sub(issued) <= pionNonceLifetime
}

// nonceFresh reports whether a request's nonce may be valid: one of
// tcpRelays', or one of the form and age of pion's.
func (r *EdgeRelay) nonceFresh(n string) bool {
	now := time.Now()
	return r.tcp.validNonce(n, now) || pionNonceFresh(n, now)
}

// LongTermKey is the long-term credential key of RFC 8489 section 9.2.2,
// MD5(username ":" realm ":" password), which a RelayConfig.AuthHandler
// returns for a user it accepts.
func LongTermKey(username, realm, password string) []byte {
	return turn.GenerateAuthKey(username, realm, password)
}

// errRefusedByAuthHandler is why a credential RelayConfig.AuthHandler
// refused was refused, for the logs.
var errRefusedByAuthHandler = errors.New("edge: refused by RelayConfig.AuthHandler")

// key returns the long-term key of a credential the relay accepts: the
// application's AuthHandler decides if there is one, Secrets otherwise. The
// error says why a credential is refused.
func (r *EdgeRelay) key(username, realm string, src net.Addr) ([]byte, error) {
	if r.cfg.AuthHandler != nil {
		k, ok := r.cfg.AuthHandler(username, realm, src)
		if !ok {
			return nil, errRefusedByAuthHandler
		}
		return k, nil
	}
	if realm != r.cfg.Realm {
		return nil, fmt.Errorf("%w: realm %q", ErrCredentialInvalid, realm)
	}
	pass, _, err := r.cfg.Secrets.Password(username)
	if err != nil {
		return nil, err
	}
	return turn.GenerateAuthKey(username, realm, pass), nil
}

// authenticate is pion's AuthHandler: the key of a credential this relay
// accepts, or a refusal. inspect has already refused the others.
func (r *EdgeRelay) authenticate(username, realm string, src net.Addr) ([]byte, bool) {
	k, err := r.key(username, realm, src)
	if err != nil {
		r.m.authFailures.Add(1)
		r.cfg.Logger.Info("relay credential refused", "from", src.String(), "err", err)
		return nil, false
	}
	return k, true
}

// withoutCredentials is m without USERNAME, REALM, NONCE and what follows
// MESSAGE-INTEGRITY: an unauthenticated request, which pion answers 401
// with a fresh nonce.
func withoutCredentials(m *stun.Message) []byte {
	setters := []stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), m.Type}
	for _, a := range m.Attributes {
		if a.Type == stun.AttrMessageIntegrity || a.Type == stun.AttrMessageIntegritySHA256 || a.Type == stun.AttrFingerprint {
			break
		}
		switch a.Type {
		case stun.AttrUsername, stun.AttrRealm, stun.AttrNonce, stun.AttrUserhash:
			continue
		}
		setters = append(setters, stun.RawAttribute{Type: a.Type, Value: a.Value})
	}
	res, err := stun.Build(setters...)
	if err != nil {
		return nil
	}
	return res.Raw
}

// signedError is the error response code to m, signed with key.
func signedError(m *stun.Message, key []byte, code stun.ErrorCode) []byte {
	res, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code}, stun.MessageIntegrity(key), stun.Fingerprint)
	if err != nil {
		return nil
	}
	return res.Raw
}

// inspect runs before pion (and tcpRelays) see a message from src, on the
// 5-tuple tuple (client names the client's end): see the comment at the
// top of this file.
func (r *EdgeRelay) inspect(tuple, client string, src net.Addr, b []byte) verdict {
	if !isRequest(b) {
		return verdict{} // ChannelData, an indication or a response
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || m.Type.Class != stun.ClassRequest || !m.Contains(stun.AttrMessageIntegrity) {
		return verdict{}
	}
	var (
		u     stun.Username
		realm stun.Realm
		nonce stun.Nonce
	)
	if u.GetFrom(m) != nil || realm.GetFrom(m) != nil || nonce.GetFrom(m) != nil {
		return verdict{} // pion answers 400
	}
	username := u.String()
	user := userOf(username)
	fresh := r.nonceFresh(nonce.String())
	key, err := r.key(username, realm.String(), src)
	if err != nil {
		r.m.authFailures.Add(1)
		r.cfg.Logger.Info("relay credential refused", "from", src.String(), "err", err)
		if !fresh {
			return verdict{} // 438 first (RFC 8489 section 9.2.4 checks the nonce before the user name)
		}
		return verdict{pass: withoutCredentials(m)}
	}
	// A message whose integrity check fails is dropped, unanswered
	// ("packets that fail are dropped").
	if stun.MessageIntegrity(key).Check(m) != nil {
		r.m.authFailures.Add(1)
		return verdict{drop: true}
	}
	if !fresh {
		return verdict{} // 438
	}

	r.mu.Lock()
	if owner, ok := r.owner[tuple]; ok && userOf(owner) != user {
		r.mu.Unlock()
		r.m.wrongCredentials.Add(1)
		return verdict{reply: signedError(m, key, stun.CodeWrongCredentials)}
	}
	pionAllocation := r.relays[client] != nil
	r.mu.Unlock()

	switch m.Type.Method {
	case stun.MethodCreatePermission, stun.MethodChannelBind:
		if pionAllocation {
			if refused := r.refusePeers(client, m); refused {
				return verdict{reply: signedError(m, key, stun.CodeForbidden)}
			}
		}
		return verdict{}
	case stun.MethodAllocate:
		return r.inspectAllocate(tuple, client, username, m, key)
	}
	return verdict{}
}

// isRequest reports whether b is a STUN request, from its header alone:
// what inspect looks at (ChannelData, indications and responses pass as
// they are, undecoded).
func isRequest(b []byte) bool {
	return stun.IsMessage(b) && binary.BigEndian.Uint16(b[0:2])&stunClassBits == 0
}

// stunClassBits are the two class bits of a STUN message type (RFC 8489
// section 5); both are zero in a request.
const stunClassBits = 0x0110

// refusePeers reports whether the peer filter refuses one of the peers of
// a CreatePermission or ChannelBind (all are refused then, none granted).
func (r *EdgeRelay) refusePeers(client string, m *stun.Message) bool {
	for _, p := range peerAddresses(m) {
		if why := r.filter.refusal(p.Addr()); why != permitted {
			r.m.peersRefused.Add(1)
			r.cfg.Logger.Info("relay peer refused", "client", strings.TrimPrefix(strings.TrimPrefix(client, "udp|"), "tcp|"),
				"peer", p.Addr().String(), "why", why)
			return true
		}
	}
	return false
}

// inspectAllocate applies the quota, the replay check and RFC 6062's rule
// to an authenticated Allocate.
func (r *EdgeRelay) inspectAllocate(tuple, client, username string, m *stun.Message, key []byte) verdict {
	user := userOf(username)
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.HasPrefix(tuple, "udp|") {
		// RFC 6062 section 5.1: a TCP relay is for clients on TCP or TLS
		// (pion would make a UDP relay of it).
		if v, err := m.Get(stun.AttrRequestedTransport); err == nil && len(v) == 4 && v[0] == protoTCP {
			return verdict{reply: signedError(m, key, stun.CodeBadRequest)}
		}
	}
	// An Allocate is only ever answered for the 5-tuple that sent it:
	// the same one from elsewhere is a replay (its integrity does not
	// cover the source address).
	now := time.Now()
	r.expireSeen(now)
	if prev, ok := r.seen[m.TransactionID]; ok && prev.tuple != tuple {
		r.m.replays.Add(1)
		return verdict{drop: true}
	} else if !ok && len(r.seen) < maxSeenAllocates {
		r.seen[m.TransactionID] = seenAllocate{tuple: tuple, at: now}
		r.seenLog = append(r.seenLog, seenEntry{id: m.TransactionID, at: now})
	}
	if _, exists := r.owner[tuple]; exists {
		return verdict{} // pion answers: a retransmission, or 437
	}
	if r.draining || r.closed {
		return verdict{reply: signedError(m, key, stun.CodeInsufficientCapacity)}
	}
	if r.perUser[user] >= r.cfg.AllocationsPerUser {
		r.m.quota.Add(1)
		return verdict{reply: signedError(m, key, stun.CodeAllocQuotaReached)}
	}
	r.perUser[user]++ // reserved until pion allocates, or settle releases it
	return verdict{alloc: &allocating{tuple: tuple, client: client, user: username}}
}

// expireSeen forgets Allocate transaction IDs older than a nonce's life.
func (r *EdgeRelay) expireSeen(now time.Time) {
	i := 0
	for i < len(r.seenLog) && now.Sub(r.seenLog[i].at) > seenAllocateTTL {
		delete(r.seen, r.seenLog[i].id)
		i++
	}
	if i > 0 {
		r.seenLog = append(r.seenLog[:0], r.seenLog[i:]...)
	}
}
