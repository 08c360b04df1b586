package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/pion/turn/v2"
)

// A client with an account of the application's allocates a relayed
// address; a wrong password and an unknown user are refused; the relay
// refuses a peer on the host itself; the program stops cleanly once the
// client has ended its allocation.
func TestRelayWithOwnCredentials(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, conn, accounts{"kiosk-7": "correct horse"}) }()

	allocate := func(user, pw string) (*turn.Client, net.PacketConn, error) {
		local, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: conn.LocalAddr().String(), TURNServerAddr: conn.LocalAddr().String(),
			Conn: local, Username: user, Password: pw, Realm: "example.test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); _ = local.Close() })
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		relayed, err := c.Allocate()
		return c, relayed, err
	}
	if _, _, err := allocate("kiosk-7", "wrong"); err == nil {
		t.Error("a wrong password got an allocation")
	}
	if _, _, err := allocate("kiosk-9", "correct horse"); err == nil {
		t.Error("an unknown user got an allocation")
	}
	_, relayed, err := allocate("kiosk-7", "correct horse")
	if err != nil {
		t.Fatalf("the application's user: %v", err)
	}
	// A listener on the host, reachable only through the relay's hole.
	target, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if _, err := relayed.WriteTo([]byte("hello"), target.LocalAddr()); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("relaying to the host itself: %v, want 403 Forbidden", err)
	}
	// The client ends its call (its allocation deleted), then the program
	// stops: its drain has nothing left to wait for.
	if err := relayed.Close(); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
