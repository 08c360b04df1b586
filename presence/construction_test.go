package presence

import (
	"testing"

	"github.com/parleyuc/parley/internal/configtest"

	"github.com/emiago/sipgo"

	"github.com/parleyuc/parley/auth"
)

// TestConstructorsRefuseIncompleteConfigs builds each exported type from a
// zero Config and from Configs missing each required field or holding an
// inconsistent one: each gets an error naming the field, never a panic.
func TestConstructorsRefuseIncompleteConfigs(t *testing.T) {
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	client, _ := sipgo.NewClient(ua)
	t.Cleanup(func() { _ = client.Close(); _ = ua.Close() })
	dir := auth.NewMemoryDirectory()
	reg, err := NewRegistrar(RegistrarConfig{Auth: noAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := NewPresencePolicy(PresencePolicyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	server := func(f func(*PresenceServerConfig)) func() error {
		return func() error {
			cfg := PresenceServerConfig{Auth: noAuth{}, Directory: dir, Policy: policy, Registrar: reg, Client: client}
			f(&cfg)
			s, err := NewPresenceServer(cfg)
			if err == nil {
				_ = s.Close()
			}
			return err
		}
	}
	router := func(f func(*RouterConfig)) func() error {
		return func() error {
			cfg := RouterConfig{Auth: noAuth{}, Directory: dir, Locator: reg, Client: client}
			f(&cfg)
			_, err := NewRouter(cfg)
			return err
		}
	}
	registrar := func(f func(*RegistrarConfig)) func() error {
		return func() error {
			cfg := RegistrarConfig{Auth: noAuth{}}
			f(&cfg)
			_, err := NewRegistrar(cfg)
			return err
		}
	}
	tests := []struct {
		name  string
		build func() error
		field string // what the error must name; "" when the Config is valid
	}{
		{"Registrar from a zero config", func() error { _, err := NewRegistrar(RegistrarConfig{}); return err }, "RegistrarConfig.Auth"},
		{"Registrar with the required fields", registrar(func(*RegistrarConfig) {}), ""},
		{"Registrar with MinExpires under a second", registrar(func(c *RegistrarConfig) { c.MinExpires = 1 }), "RegistrarConfig.MinExpires"},
		{"Registrar with MaxExpires below MinExpires", registrar(func(c *RegistrarConfig) { c.MaxExpires = 2 * DefaultMinExpires; c.MinExpires = 3 * DefaultMinExpires }), "RegistrarConfig.MaxExpires"},
		{"Registrar with DefaultExpires beyond MaxExpires", registrar(func(c *RegistrarConfig) { c.DefaultExpires = 2 * DefaultMaxExpires }), "RegistrarConfig.DefaultExpires"},
		{"Registrar with negative MaxBindings", registrar(func(c *RegistrarConfig) { c.MaxBindings = -1 }), "RegistrarConfig.MaxBindings"},

		{"PresencePolicy from a zero config (documented defaults)", func() error { _, err := NewPresencePolicy(PresencePolicyConfig{}); return err }, ""},
		{"PresencePolicy with an unknown level", func() error {
			_, err := NewPresencePolicy(PresencePolicyConfig{Visibility: map[Level]Visibility{Personal + 1: {}}})
			return err
		}, "PresencePolicyConfig.Visibility"},
		{"PresencePolicy letting the blocked see", func() error {
			_, err := NewPresencePolicy(PresencePolicyConfig{Visibility: map[Level]Visibility{Blocked: {Status: true}}})
			return err
		}, "PresencePolicyConfig.Visibility"},

		{"PresenceServer from a zero config", func() error { _, err := NewPresenceServer(PresenceServerConfig{}); return err }, "PresenceServerConfig.Auth"},
		{"PresenceServer with the required fields", server(func(*PresenceServerConfig) {}), ""},
		{"PresenceServer without Auth", server(func(c *PresenceServerConfig) { c.Auth = nil }), "PresenceServerConfig.Auth"},
		{"PresenceServer without Directory", server(func(c *PresenceServerConfig) { c.Directory = nil }), "PresenceServerConfig.Directory"},
		{"PresenceServer without Policy", server(func(c *PresenceServerConfig) { c.Policy = nil }), "PresenceServerConfig.Policy"},
		{"PresenceServer with a nil *PresencePolicy", server(func(c *PresenceServerConfig) { c.Policy = (*PresencePolicy)(nil) }), "PresenceServerConfig.Policy"},
		{"PresenceServer without Registrar", server(func(c *PresenceServerConfig) { c.Registrar = nil }), "PresenceServerConfig.Registrar"},
		{"PresenceServer without Client", server(func(c *PresenceServerConfig) { c.Client = nil }), "PresenceServerConfig.Client"},
		{"PresenceServer with MinExpires under a second", server(func(c *PresenceServerConfig) { c.MinExpires = 1 }), "PresenceServerConfig.MinExpires"},
		{"PresenceServer with MaxExpires below MinExpires", server(func(c *PresenceServerConfig) { c.MinExpires = 2 * DefaultPresenceExpires }), "PresenceServerConfig.MaxExpires"},
		{"PresenceServer with negative MaxWatcherSubscriptions", server(func(c *PresenceServerConfig) { c.MaxWatcherSubscriptions = -1 }), "PresenceServerConfig.MaxWatcherSubscriptions"},
		{"PresenceServer with negative MaxPresentityWatchers", server(func(c *PresenceServerConfig) { c.MaxPresentityWatchers = -1 }), "PresenceServerConfig.MaxPresentityWatchers"},
		{"PresenceServer with negative MaxPublications", server(func(c *PresenceServerConfig) { c.MaxPublications = -1 }), "PresenceServerConfig.MaxPublications"},

		{"Router from a zero config", func() error { _, err := NewRouter(RouterConfig{}); return err }, "RouterConfig.Auth"},
		{"Router with the required fields", router(func(*RouterConfig) {}), ""},
		{"Router without Auth", router(func(c *RouterConfig) { c.Auth = nil }), "RouterConfig.Auth"},
		{"Router without Directory", router(func(c *RouterConfig) { c.Directory = nil }), "RouterConfig.Directory"},
		{"Router without Locator", router(func(c *RouterConfig) { c.Locator = nil }), "RouterConfig.Locator"},
		{"Router without Client", router(func(c *RouterConfig) { c.Client = nil }), "RouterConfig.Client"},
		{"Router with a nil *PresencePolicy", router(func(c *RouterConfig) { c.Policy = (*PresencePolicy)(nil) }), "RouterConfig.Policy"},
		{"Router with a negative Timeout", router(func(c *RouterConfig) { c.Timeout = -1 }), "RouterConfig.Timeout"},
		{"Router with a negative RingTimeout", router(func(c *RouterConfig) { c.RingTimeout = -1 }), "RouterConfig.RingTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configtest.Check(t, tt.field, tt.build)
		})
	}
}
