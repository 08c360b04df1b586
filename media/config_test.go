package media

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestConstructorsRefuseIncompleteConfigs: a zero Config and a Config
// missing each required field give an error naming it, never a value that
// panics later.
func TestConstructorsRefuseIncompleteConfigs(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, tc := range []struct {
		field string
		cfg   BridgeConfig
	}{
		{"BridgeConfig.Tokens", BridgeConfig{}},
		{"BridgeConfig.Tokens", BridgeConfig{Meetings: e.focus, UDP: udp}},
		{"BridgeConfig.Meetings", BridgeConfig{Tokens: e.tokens, UDP: udp}},
		{"BridgeConfig.UDP", BridgeConfig{Tokens: e.tokens, Meetings: e.focus}},
		{"BridgeConfig.MaxTracks", BridgeConfig{Tokens: e.tokens, Meetings: e.focus, UDP: udp, MaxTracks: -1}},
		{"BridgeConfig.LobbyMusic", BridgeConfig{Tokens: e.tokens, Meetings: e.focus, UDP: udp, LobbyMusic: []byte("not a WAV")}},
	} {
		b, err := NewBridge(tc.cfg)
		if err == nil {
			_ = b.Close()
			t.Errorf("%s: NewBridge accepted the config", tc.field)
		} else if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
	}
	for _, tc := range []struct {
		field string
		cfg   SignalingConfig
	}{
		{"SignalingConfig.Focus", SignalingConfig{}},
		{"SignalingConfig.Bridge", SignalingConfig{Focus: e.focus}},
		{"SignalingConfig.Focus", SignalingConfig{Bridge: e.bridge}},
	} {
		if _, err := NewSignaling(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: NewSignaling = %v, want an error naming the field", tc.field, err)
		}
	}
}
