// Command provider is a small OpenID Connect provider for Parley's tests:
// a real provider process, spoken to over HTTPS, that Parley discovers,
// fetches keys from and takes tokens of, as it would Entra ID or Keycloak.
//
// It serves discovery, a JWKS, the device authorization grant (RFC 8628)
// with a login form, the authorization code grant with PKCE (RFC 7636) and
// loopback redirects (RFC 8252), refresh tokens, revocation (RFC 7009) and
// userinfo. Access tokens are JWTs (RFC 9068) signed with ES256 or RS256,
// both FIPS-approved.
//
// For tests, /admin/ (bearer admin_secret) rotates the signing key, disables
// and enables users (a disabled user's tokens fail at userinfo and cannot
// be refreshed) and mints tokens with chosen audience and lifetime.
//
// Usage: provider -config provider.json. It prints
// "listening https://127.0.0.1:PORT" once it serves.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	path := flag.String("config", "", "JSON configuration file")
	flag.Parse()
	if *path == "" {
		log.Fatal("provider: -config is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		log.Fatalf("provider: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		log.Fatalf("provider: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Fatalf("provider: %v", err)
	}
	issuer := "https://" + ln.Addr().String()
	op, err := newProvider(cfg, issuer)
	if err != nil {
		log.Fatalf("provider: %v", err)
	}
	srv := &http.Server{
		Handler:           op.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Println("listening", issuer)
	if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
		log.Fatalf("provider: %v", err)
	}
}
