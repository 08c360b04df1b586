package main

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pion/stun"
)

// The TURN client is raw STUN (RFC 8656) over one connected UDP socket
// per allocation, written here rather than pion's turn.Client: the
// generator shares the machine with the server it measures, and pion's
// client decodes every ChannelData and hands it through its own goroutine
// and buffers; here the setup alone is STUN, and the load is ChannelData
// frames written and read in batches.

// credential is a long-term credential (RFC 8489 section 9.2).
type credential struct {
	username, password string
}

// restCredential is the TURN REST API form coturn's --use-auth-secret
// (--static-auth-secret) accepts: user name "expiry:user", password the
// base64 HMAC-SHA1 of the user name with the shared secret.
func restCredential(secret, user string, ttl time.Duration) credential {
	name := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(name))
	return credential{username: name, password: base64.StdEncoding.EncodeToString(mac.Sum(nil))}
}

// STUN attribute values the client sends.
const (
	protoUDP      = 17
	firstChannel  = 0x4000
	setupTimeout  = 5 * time.Second
	setupAttempts = 5
)

// allocation is one client's allocation: its socket to the server, the
// channel bound to its peer, and what authenticates its requests.
type allocation struct {
	conn    *net.UDPConn
	relayed *net.UDPAddr
	channel uint16
	realm   stun.Realm
	nonce   stun.Nonce
	cred    credential
	key     stun.MessageIntegrity
}

// allocate makes an allocation on server with cred and binds channel to
// peer.
func allocate(server string, cred credential, peer *net.UDPAddr, channel uint16) (*allocation, error) {
	raddr, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		return nil, err
	}
	a := &allocation{conn: conn, channel: channel, cred: cred}
	if err := a.setup(peer); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return a, nil
}

func (a *allocation) setup(peer *net.UDPAddr) error {
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{protoUDP, 0, 0, 0}}
	// The first Allocate carries no credentials: the server answers 401
	// with its realm and a nonce.
	res, err := a.roundTrip(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, stun.Fingerprint))
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	if err := a.challenged(res); err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	res, err = a.request(stun.MethodAllocate, transport)
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		return fmt.Errorf("allocate: no relayed address: %w", err)
	}
	a.relayed = &net.UDPAddr{IP: relayed.IP, Port: relayed.Port}
	peerAttr := &stun.XORMappedAddress{IP: peer.IP, Port: peer.Port}
	number := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(a.channel >> 8), byte(a.channel), 0, 0}}
	if _, err := a.request(stun.MethodChannelBind, number, peerSetter{peerAttr}); err != nil {
		return fmt.Errorf("channel bind to %v: %w", peer, err)
	}
	return nil
}

// challenged takes the realm and nonce of a 401 (or 438) answer.
func (a *allocation) challenged(res *stun.Message) error {
	var code stun.ErrorCodeAttribute
	if res.Type.Class != stun.ClassErrorResponse || code.GetFrom(res) != nil ||
		(code.Code != stun.CodeUnauthorized && code.Code != stun.CodeStaleNonce) {
		return fmt.Errorf("expected a 401 challenge, got %v %v", res.Type, code)
	}
	if err := a.realm.GetFrom(res); err != nil {
		return fmt.Errorf("401 without a realm: %w", err)
	}
	if err := a.nonce.GetFrom(res); err != nil {
		return fmt.Errorf("401 without a nonce: %w", err)
	}
	a.key = stun.NewLongTermIntegrity(a.cred.username, a.realm.String(), a.cred.password)
	return nil
}

// peerSetter adds an XOR-PEER-ADDRESS.
type peerSetter struct{ a *stun.XORMappedAddress }

func (p peerSetter) AddTo(m *stun.Message) error { return p.a.AddToAs(m, stun.AttrXORPeerAddress) }

// request sends an authenticated request and returns its success
// response; a stale nonce is retried once with the new one.
func (a *allocation) request(method stun.Method, attrs ...stun.Setter) (*stun.Message, error) {
	for try := 0; try < 2; try++ {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
		setters = append(setters, stun.NewUsername(a.cred.username), a.realm, a.nonce, a.key, stun.Fingerprint)
		m, err := stun.Build(setters...)
		if err != nil {
			return nil, err
		}
		res, err := a.roundTrip(m)
		if err != nil {
			return nil, err
		}
		if res.Type.Class == stun.ClassSuccessResponse {
			return res, nil
		}
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(res)
		if code.Code == stun.CodeStaleNonce && try == 0 {
			if err := a.challenged(res); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("%v: %v", res.Type, code)
	}
	return nil, errors.New("stale nonce twice")
}

// roundTrip sends m and waits for the response with its transaction ID,
// sending it again on silence (UDP), setupAttempts times.
func (a *allocation) roundTrip(m *stun.Message) (*stun.Message, error) {
	buf := make([]byte, 1500)
	for try := 0; try < setupAttempts; try++ {
		if _, err := a.conn.Write(m.Raw); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(setupTimeout / setupAttempts)
		for {
			_ = a.conn.SetReadDeadline(deadline)
			n, err := a.conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() != nil || res.TransactionID != m.TransactionID {
				continue // a stray ChannelData or an older answer
			}
			_ = a.conn.SetReadDeadline(time.Time{})
			return res, nil
		}
	}
	return nil, fmt.Errorf("no answer from %v in %v", a.conn.RemoteAddr(), setupTimeout)
}

// release deletes the allocation (a Refresh with lifetime 0) so that the
// server's quota is free for the next run; errors are not fatal.
func (a *allocation) release() error {
	lifetime := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
	_, err := a.request(stun.MethodRefresh, lifetime)
	_ = a.conn.Close()
	return err
}
