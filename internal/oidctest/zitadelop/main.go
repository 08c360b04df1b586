// Command zitadelop runs the example OpenID Connect provider of
// github.com/zitadel/oidc/v3 (its op package, example storage, login page
// and device-flow pages) over HTTPS, so that Parley's tests sign in against
// an implementation written by someone else, in a process of its own.
//
// It is a module of its own so that zitadel/oidc's dependencies stay out
// of Parley's go.mod; it imports nothing of Parley.
//
// The example provider is used as shipped, with three settings a
// deployment of a zitadel/oidc provider would make for Parley (store.go):
// the client's access tokens are JWTs (RFC 9068 style: Parley verifies
// them with the provider's keys and does not introspect opaque tokens),
// the client may use the device authorization grant besides the
// authorization code grant, and access tokens carry the user's email and,
// for the example's admin users, a groups claim.
//
// Usage:
//
//	zitadelop -tls-cert provider.crt -tls-key provider.key [-listen 127.0.0.1:0]
//	  [-users users.json] [-client-id parley] [-redirect-uri URI]... [-admin-group parley-admins]
//
// users.json is the example storage's user file: an object of user ID to
// {"ID", "Username", "Password", "Email", "EmailVerified", "IsAdmin", ...}.
// It prints "listening https://HOST:PORT", the issuer, once it serves, and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`address` to serve HTTPS on")
	certFile := flag.String("tls-cert", "", "TLS certificate `file` (PEM), required")
	keyFile := flag.String("tls-key", "", "TLS private key `file` (PEM), required")
	usersFile := flag.String("users", "", "the example storage's users `file` (JSON); default its built-in test users")
	clientID := flag.String("client-id", "parley", "the public client's `ID` (PKCE, device flow, refresh tokens)")
	var redirects []string
	flag.Func("redirect-uri", "a redirect `URI` registered for the client (repeatable); loopback ones match any port", func(s string) error {
		redirects = append(redirects, s)
		return nil
	})
	deviceFlow := flag.Bool("device-flow", true, "allow the client the device authorization grant (RFC 8628)")
	adminGroup := flag.String("admin-group", "parley-admins", "`group` put in the groups claim of the users file's IsAdmin users")
	flag.Parse()
	if *certFile == "" || *keyFile == "" {
		log.Fatal("zitadelop: -tls-cert and -tls-key are required")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("zitadelop: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("zitadelop: %v", err)
	}
	issuer := "https://" + ln.Addr().String()

	var users storage.UserStore
	if *usersFile != "" {
		if users, err = storage.StoreFromFile(*usersFile); err != nil {
			log.Fatalf("zitadelop: -users: %v", err)
		}
	} else {
		users = storage.NewUserStore(issuer)
	}
	// The example's native client: public (no secret), PKCE, refresh
	// tokens, and for a loopback redirect URI any port (RFC 8252).
	storage.RegisterClients(storage.NativeClient(*clientID, redirects...))
	st := &store{Storage: storage.NewStorage(users), users: users, deviceFlow: *deviceFlow, adminGroup: *adminGroup}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := &http.Server{
		Handler:           exampleop.SetupServer(issuer, st, logger, false),
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
		log.Fatalf("zitadelop: %v", err)
	}
}
