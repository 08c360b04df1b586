package edge

import (
	"crypto/x509"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// refuseAll is an Authenticator that lets nobody through.
type refuseAll struct{}

func (refuseAll) Authenticate(req *sip.Request, tx sip.ServerTransaction) *auth.Identity {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 401, "Unauthorized", nil))
	return nil
}

// configCase is a Config with one thing wrong, and the field the error
// must name.
type configCase[C any] struct {
	name  string
	field string
	edit  func(*C)
}

// checkConfigs builds from the zero Config and from each case, wanting an
// error naming the field, never a panic; then from the valid Config.
func checkConfigs[C any, T any](t *testing.T, valid func() C, build func(C) (T, error), cases []configCase[C]) T {
	t.Helper()
	try := func(name string, c C) (v T, err error) {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("%s: panic %v", name, p)
			}
		}()
		return build(c)
	}
	var zero C
	if _, err := try("zero Config", zero); err == nil {
		t.Errorf("zero Config: accepted")
	}
	for _, c := range cases {
		cfg := valid()
		c.edit(&cfg)
		_, err := try(c.name, cfg)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.field)
		}
	}
	v, err := try("valid Config", valid())
	if err != nil {
		t.Fatalf("valid Config: %v", err)
	}
	return v
}

func TestNewEdgeRelayValidatesItsConfig(t *testing.T) {
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	valid := func() RelayConfig {
		return RelayConfig{Realm: "example.test", Secrets: NewSecrets(0, nil), UDP: []net.PacketConn{udp}, RelayAddress: net.IPv4(127, 0, 0, 1)}
	}
	r := checkConfigs(t, valid, NewEdgeRelay, []configCase[RelayConfig]{
		{"no realm", "RelayConfig.Realm", func(c *RelayConfig) { c.Realm = "" }},
		{"no credential check", "RelayConfig.Secrets", func(c *RelayConfig) { c.Secrets = nil }},
		{"no relay address", "RelayConfig.RelayAddress", func(c *RelayConfig) { c.RelayAddress = nil }},
		{"a relay address of 3 bytes", "RelayConfig.RelayAddress", func(c *RelayConfig) { c.RelayAddress = net.IP{1, 2, 3} }},
		{"no listener", "RelayConfig.UDP", func(c *RelayConfig) { c.UDP = nil }},
		{"a nil UDP listener", "RelayConfig.UDP[1]", func(c *RelayConfig) { c.UDP = append(c.UDP, nil) }},
		{"a nil TCP listener", "RelayConfig.TCP[0]", func(c *RelayConfig) { c.TCP = []net.Listener{nil} }},
		{"a host name to bind", "RelayConfig.RelayBind", func(c *RelayConfig) { c.RelayBind = "relay.example.test" }},
		{"PortMax only", "RelayConfig.PortMin", func(c *RelayConfig) { c.PortMax = 60000 }},
		{"PortMin over PortMax", "RelayConfig.PortMin", func(c *RelayConfig) { c.PortMin, c.PortMax = 60000, 50000 }},
		{"a negative quota", "RelayConfig.AllocationsPerUser", func(c *RelayConfig) { c.AllocationsPerUser = -1 }},
		{"a negative bandwidth", "RelayConfig.Bandwidth", func(c *RelayConfig) { c.Bandwidth = -1 }},
		{"an invalid allowed prefix", "RelayConfig.AllowPeers[0]", func(c *RelayConfig) { c.AllowPeers = []netip.Prefix{{}} }},
	})
	_ = r.Close()
}

func TestNewRelayCredentialsValidatesItsConfig(t *testing.T) {
	valid := func() RelayCredentialsConfig {
		return RelayCredentialsConfig{Secrets: NewSecrets(0, nil), URIs: []string{"turn:relay.example.test"}, Auth: refuseAll{}}
	}
	checkConfigs(t, valid, NewRelayCredentials, []configCase[RelayCredentialsConfig]{
		{"no secrets", "RelayCredentialsConfig.Secrets", func(c *RelayCredentialsConfig) { c.Secrets = nil }},
		{"no URIs", "RelayCredentialsConfig.URIs", func(c *RelayCredentialsConfig) { c.URIs = nil }},
		{"an empty URI", "RelayCredentialsConfig.URIs", func(c *RelayCredentialsConfig) { c.URIs = []string{""} }},
		{"a negative TTL", "RelayCredentialsConfig.TTL", func(c *RelayCredentialsConfig) { c.TTL = -1 }},
	})
}

func TestNewAccessEdgeValidatesItsConfig(t *testing.T) {
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua)
	if err != nil {
		t.Fatal(err)
	}
	valid := func() AccessEdgeConfig {
		return AccessEdgeConfig{Federation: NewFederation(), Domains: []string{"example.test"}, Internal: "127.0.0.1:5061",
			Listener: "127.0.0.1:5062", Client: client}
	}
	checkConfigs(t, valid, NewAccessEdge, []configCase[AccessEdgeConfig]{
		{"no federation", "AccessEdgeConfig.Federation", func(c *AccessEdgeConfig) { c.Federation = nil }},
		{"no domains", "AccessEdgeConfig.Domains", func(c *AccessEdgeConfig) { c.Domains = nil }},
		{"an empty domain", "AccessEdgeConfig.Domains[1]", func(c *AccessEdgeConfig) { c.Domains = append(c.Domains, " ") }},
		{"no internal server", "AccessEdgeConfig.Internal", func(c *AccessEdgeConfig) { c.Internal = "" }},
		{"no listener", "AccessEdgeConfig.Listener", func(c *AccessEdgeConfig) { c.Listener = "" }},
		{"no client", "AccessEdgeConfig.Client", func(c *AccessEdgeConfig) { c.Client = nil }},
		{"a partner bound to no CAs", `AccessEdgeConfig.PartnerCAs["b.test"]`, func(c *AccessEdgeConfig) { c.PartnerCAs = map[string]*x509.CertPool{"b.test": nil} }},
		{"internal names without their CA", "AccessEdgeConfig.InternalCA", func(c *AccessEdgeConfig) { c.InternalNames = []string{"sip.example.test"} }},
		{"a negative timeout", "AccessEdgeConfig.Timeout", func(c *AccessEdgeConfig) { c.Timeout = -1 }},
		{"a negative INVITE timeout", "AccessEdgeConfig.InviteTimeout", func(c *AccessEdgeConfig) { c.InviteTimeout = -1 }},
		{"a partner without an address", "AccessEdgeConfig.Partners", func(c *AccessEdgeConfig) { c.Partners = map[string]string{"partner.test": ""} }},
		{"a negative idle timeout", "AccessEdgeConfig.ConnLimits.IdleTimeout", func(c *AccessEdgeConfig) { c.ConnLimits.IdleTimeout = -1 }},
	})
}
