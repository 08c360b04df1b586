package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/media"
	"github.com/parleyuc/parley/presence"
)

// limitsConfig is every limit a deployment tunes, as the config file's
// "limits" gives it (the connection limits have flags too). A zero or
// absent value takes the SDK's default, which README's config reference
// lists with its unit; a negative one is refused, naming the field.
type limitsConfig struct {
	// The SIP listeners' connections (sip_tls, sip_wss, edge,
	// edge_users, pool): auth.ConnLimits.
	HandshakeTimeout   duration `json:"handshake_timeout"`
	MessageTimeout     duration `json:"message_timeout"`
	IdleTimeout        duration `json:"idle_timeout"`
	MaxConnsPerAddress int      `json:"max_conns_per_address"`
	MaxConns           int      `json:"max_conns"`
	MaxMessageSize     int      `json:"max_message_size"`
	// SIPReadBuffer is the buffer (bytes) sipgo reads each SIP
	// connection into, held while the connection lives: over WebSocket
	// the largest message taken (sipgo reads each message whole into
	// it), over TLS only a read's size. 0: 16 KiB. A server without SIP
	// over WebSocket clients can take 4 KiB (BENCHMARKS.md, sign-in
	// storm: 11 KB less per idle connection). One per process: the
	// first server started sets it.
	SIPReadBuffer int `json:"sip_read_buffer"`
	// WSSOrigins are the origins whose pages may open SIP over
	// WebSocket. Empty: this server's HTTPS origins (each name of its
	// certificate, at the https port).
	WSSOrigins []string `json:"wss_origins"`

	Throttle     throttleLimits     `json:"throttle"`
	Registration registrationLimits `json:"registration"`
	Relay        relayLimits        `json:"relay"`
	Lobby        lobbyLimits        `json:"lobby"`
	Signaling    signalingLimits    `json:"signaling"`
	// NonceTTL is how long a Digest challenge's nonce is valid.
	NonceTTL duration `json:"nonce_ttl"`
}

// rateLimit is an auth.Limit: a token bucket of Burst requests,
// refilled at Rate per second. Both or neither.
type rateLimit struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// throttleLimits are the Authenticator's request throttles (auth.ThrottleConfig):
// every SIP request and HTTPS sign-in counts against its source address,
// its subnet (/24, /64) and a federated partner's domain. An office
// behind one NAT address needs per_address (and per_subnet) raised.
type throttleLimits struct {
	PerAddress rateLimit `json:"per_address"`
	PerSubnet  rateLimit `json:"per_subnet"`
	PerDomain  rateLimit `json:"per_domain"`
	// SpimPerSender bounds what one user starts (messages, calls,
	// subscriptions) with people who do not have them as a contact.
	SpimPerSender rateLimit `json:"spim_per_sender"`
}

// registrationLimits bound registrations (presence.RegistrarConfig).
type registrationLimits struct {
	MinExpires     duration `json:"min_expires"`
	MaxExpires     duration `json:"max_expires"`
	DefaultExpires duration `json:"default_expires"`
	MaxBindings    int      `json:"max_bindings"`
}

// relayLimits bound the TURN relay (edge.RelayConfig).
type relayLimits struct {
	Bandwidth          int `json:"bandwidth"` // bytes per second, each way, per allocation
	AllocationsPerUser int `json:"allocations_per_user"`
	PortMin            int `json:"port_min"`
	PortMax            int `json:"port_max"`
}

// lobbyLimits bound meetings' lobbies (conference.LobbyConfig).
type lobbyLimits struct {
	Timeout duration `json:"timeout"`
	Max     int      `json:"max"`
}

// signalingLimits bound the web client's tickets (media.SignalingConfig).
type signalingLimits struct {
	TicketTTL            duration `json:"ticket_ttl"`
	MaxTicketsPerSource  int      `json:"max_tickets_per_source"`
	MaxTicketsPerMeeting int      `json:"max_tickets_per_meeting"`
}

// The bounds of limits.sip_read_buffer: sipgo's read buffer.
const (
	defaultSIPReadBuffer = 16 << 10
	minSIPReadBuffer     = 1 << 10
)

// check names the first limit that is negative or inconsistent, or
// origin that is not one.
func (l *limitsConfig) check() error {
	for _, f := range []struct {
		field, flag string
		v           float64
	}{{"handshake_timeout", "handshake-timeout", float64(l.HandshakeTimeout)}, {"message_timeout", "message-timeout", float64(l.MessageTimeout)},
		{"idle_timeout", "idle-timeout", float64(l.IdleTimeout)}, {"max_conns_per_address", "max-conns-per-address", float64(l.MaxConnsPerAddress)},
		{"max_conns", "max-conns", float64(l.MaxConns)}, {"max_message_size", "max-message-size", float64(l.MaxMessageSize)},
		{"sip_read_buffer", "", float64(l.SIPReadBuffer)},
		{"throttle.per_address.rate", "", l.Throttle.PerAddress.Rate}, {"throttle.per_address.burst", "", float64(l.Throttle.PerAddress.Burst)},
		{"throttle.per_subnet.rate", "", l.Throttle.PerSubnet.Rate}, {"throttle.per_subnet.burst", "", float64(l.Throttle.PerSubnet.Burst)},
		{"throttle.per_domain.rate", "", l.Throttle.PerDomain.Rate}, {"throttle.per_domain.burst", "", float64(l.Throttle.PerDomain.Burst)},
		{"throttle.spim_per_sender.rate", "", l.Throttle.SpimPerSender.Rate}, {"throttle.spim_per_sender.burst", "", float64(l.Throttle.SpimPerSender.Burst)},
		{"registration.min_expires", "", float64(l.Registration.MinExpires)}, {"registration.max_expires", "", float64(l.Registration.MaxExpires)},
		{"registration.default_expires", "", float64(l.Registration.DefaultExpires)}, {"registration.max_bindings", "", float64(l.Registration.MaxBindings)},
		{"relay.bandwidth", "", float64(l.Relay.Bandwidth)}, {"relay.allocations_per_user", "", float64(l.Relay.AllocationsPerUser)},
		{"relay.port_min", "", float64(l.Relay.PortMin)}, {"relay.port_max", "", float64(l.Relay.PortMax)},
		{"lobby.timeout", "", float64(l.Lobby.Timeout)}, {"lobby.max", "", float64(l.Lobby.Max)},
		{"signaling.ticket_ttl", "", float64(l.Signaling.TicketTTL)}, {"signaling.max_tickets_per_source", "", float64(l.Signaling.MaxTicketsPerSource)},
		{"signaling.max_tickets_per_meeting", "", float64(l.Signaling.MaxTicketsPerMeeting)}, {"nonce_ttl", "", float64(l.NonceTTL)},
	} {
		if f.v < 0 {
			name := fmt.Sprintf("field \"limits.%s\"", f.field)
			if f.flag != "" {
				name += " (-" + f.flag + ")"
			}
			return fmt.Errorf("%s: must not be negative (0 takes the default)", name)
		}
	}
	for name, r := range map[string]rateLimit{"per_address": l.Throttle.PerAddress, "per_subnet": l.Throttle.PerSubnet,
		"per_domain": l.Throttle.PerDomain, "spim_per_sender": l.Throttle.SpimPerSender} {
		if (r.Rate == 0) != (r.Burst == 0) {
			return fmt.Errorf("field \"limits.throttle.%s\": give both rate (per second) and burst, or neither", name)
		}
	}
	if b := l.SIPReadBuffer; b != 0 && (b < minSIPReadBuffer || b > 65535) {
		return fmt.Errorf("field \"limits.sip_read_buffer\" %d: want %d to 65535 bytes (0 takes %d)", b, minSIPReadBuffer, defaultSIPReadBuffer)
	}
	reg := l.Registration
	switch {
	case reg.MinExpires > 0 && reg.MaxExpires > 0 && reg.MinExpires > reg.MaxExpires:
		return fmt.Errorf("field \"limits.registration.min_expires\" %v: more than max_expires %v", time.Duration(reg.MinExpires), time.Duration(reg.MaxExpires))
	case l.Relay.PortMin > 65535 || l.Relay.PortMax > 65535:
		return fmt.Errorf("field \"limits.relay.port_min\"/\"port_max\" %d-%d: ports go up to 65535", l.Relay.PortMin, l.Relay.PortMax)
	case (l.Relay.PortMin == 0) != (l.Relay.PortMax == 0):
		return fmt.Errorf("field \"limits.relay.port_min\"/\"port_max\" %d-%d: give both, or neither", l.Relay.PortMin, l.Relay.PortMax)
	case l.Relay.PortMin > l.Relay.PortMax:
		return fmt.Errorf("field \"limits.relay.port_min\" %d: more than port_max %d", l.Relay.PortMin, l.Relay.PortMax)
	}
	for _, o := range l.WSSOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return fmt.Errorf("field \"limits.wss_origins\" (-wss-origins) %q: want scheme://host[:port]", o)
		}
	}
	return nil
}

// connLimits is the listeners' auth.ConnLimits; origins are the
// server's own HTTPS origins, used when WSSOrigins is empty.
func (l *limitsConfig) connLimits(origins []string) auth.ConnLimits {
	if len(l.WSSOrigins) > 0 {
		origins = l.WSSOrigins
	}
	return auth.ConnLimits{HandshakeTimeout: time.Duration(l.HandshakeTimeout), MessageTimeout: time.Duration(l.MessageTimeout),
		IdleTimeout: time.Duration(l.IdleTimeout), MaxPerAddress: l.MaxConnsPerAddress, MaxConns: l.MaxConns,
		MaxMessageSize: l.MaxMessageSize, Origins: origins}
}

// throttle is the Authenticator's request throttle.
func (l *limitsConfig) throttle() auth.ThrottleConfig {
	t := l.Throttle
	return auth.ThrottleConfig{PerAddress: auth.Limit(t.PerAddress), PerSubnet: auth.Limit(t.PerSubnet), PerDomain: auth.Limit(t.PerDomain)}
}

// spim is the per-sender budget for approaching strangers.
func (l *limitsConfig) spim() auth.ThrottleConfig {
	return auth.ThrottleConfig{PerSender: auth.Limit(l.Throttle.SpimPerSender)}
}

// registrar fills the registration bounds of cfg.
func (l *limitsConfig) registrar(cfg *presence.RegistrarConfig) {
	r := l.Registration
	cfg.MinExpires, cfg.MaxExpires, cfg.DefaultExpires = time.Duration(r.MinExpires), time.Duration(r.MaxExpires), time.Duration(r.DefaultExpires)
	cfg.MaxBindings = r.MaxBindings
}

// relay fills the relay's bounds of cfg.
func (l *limitsConfig) relay(cfg *edge.RelayConfig) {
	r := l.Relay
	cfg.Bandwidth, cfg.AllocationsPerUser = r.Bandwidth, r.AllocationsPerUser
	cfg.PortMin, cfg.PortMax = uint16(r.PortMin), uint16(r.PortMax) // checked: at most 65535
}

// lobby is the Focus's Lobby configuration.
func (l *limitsConfig) lobby() conference.LobbyConfig {
	return conference.LobbyConfig{Timeout: time.Duration(l.Lobby.Timeout), Max: l.Lobby.Max}
}

// signaling fills the ticket bounds of cfg.
func (l *limitsConfig) signaling(cfg *media.SignalingConfig) {
	s := l.Signaling
	cfg.TicketTTL, cfg.MaxTicketsPerSource, cfg.MaxTicketsPerMeeting = time.Duration(s.TicketTTL), s.MaxTicketsPerSource, s.MaxTicketsPerMeeting
}
