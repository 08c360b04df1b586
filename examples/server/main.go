// Command server is Parley's reference server: every package of the SDK
// wired together the way an application would do it. Read this file top to
// bottom as the wiring guide.
//
// Usage:
//
//	go run ./examples/server [-listen HOST] [-public HOST] [-config FILE] [-data DIR] [-log-format text|json] [-log-level LEVEL]
//	                         [-tls-cert FILE -tls-key FILE]
//	                         [-http ADDR] [-https ADDR] [-sip-tls ADDR] [-sip-wss ADDR] [-edge ADDR] [-edge-users ADDR]
//	                         [-turn ADDR] [-turns ADDR] [-media ADDR] [-relay-allow-loopback]
//	                         [-store bolt|memory|redis] [-redis URL] [-pool ADDR] [-dial-in NUMBER] [-gateway URI]
//
// Every listener is on 127.0.0.1 unless -listen names another host (an
// address given without a host takes it); -public names the host clients
// reach it by, which everything announced to them carries (network.go),
// and -tls-cert/-tls-key bring a certificate of your own for the
// listeners users' clients reach, reloaded when its files change
// (certfiles.go). Every limit is in the config's "limits" (limits.go). A JSON config file (-config)
// may set any of these by field name ("listen", "data", "sip_tls", "log":
// {"format": "json"}, ...); flags given override it. Start-up refuses,
// naming the problem: a port in use, a data directory it cannot read and
// write or that others may write, a malformed config (the field named),
// and a CA key or admin token others may read.
//
// On first run it creates the data directory with an enterprise CA, a
// server certificate for localhost and 127.0.0.1, and a demo tenant
// (example.test, users alice and bob, whose generated passwords it prints
// once and keeps in demo-passwords.txt). It serves the CA's CRL (and the CA
// certificate, for clients to trust) over plain HTTP, and SIP over TLS and
// over secure WebSocket (for browsers), where every request must
// authenticate (Digest or a client certificate): registration, instant
// messages, presence, calls and meetings. Over HTTPS, signed-in users
// schedule meetings (POST /api/meetings) and get relay credentials
// (/relay/credentials; also over SIP, SERVICE), and anyone with a meeting's
// link (/meet/<id>) gets the web client, which joins the meeting from the
// browser: as a signed-in user (with a password, or with the tenant's
// identity provider: websignin.go) or as a guest with the conference key,
// through the lobby, with audio and video through the media bridge (one
// UDP port, -media). SIP clients join meetings with audio too (SDES-SRTP,
// mixed by the bridge), and a PSTN gateway with a client certificate
// (-gateway) delivers dial-in callers to an access number (-dial-in),
// where the IVR asks for the conference ID and their name. The Access Edge takes federated
// partners' signaling over mutual TLS, and remote users' and meeting
// guests' over TLS on a port of its own; the TURN relay (UDP and TCP on one
// port, TLS on another) relays media for holders of relay credentials.
// Signed-in users keep their contacts and privacy mode over HTTPS too
// (/api/me/contacts, /api/me/privacy).
//
// Several front ends form a pool when they share the data directory (its
// CA and users) and one Redis (-store redis -redis URL), each with a
// -pool listener of its own: registrations, publications, contacts,
// meetings, the federation policy and partners and the CA's revocations
// are in Redis (a certificate revoked on one front end is on every one's
// CRL; a change of the tenants or the federation through one front end's
// admin API is followed by the others at once), a presence change on one
// front end reaches watchers on the others, and a MESSAGE for a user
// connected to another front end is passed to it over mutual TLS.
//
// The tenant admin manages users, licenses, federation, certificates,
// meetings and sessions over HTTPS (/admin/v1/, with the bearer token in
// the data directory's admin-token; examples/admin is its command line).
// The plain HTTP listener also serves Prometheus metrics (/metrics) and a
// health check (/healthz).
//
// It prints one line per listener, "listening <name> <addr>", then a
// banner saying where to go next, and shuts down cleanly on Ctrl-C.
package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/media"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
	"github.com/parleyuc/parley/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// run is the whole server: it returns when ctx is done (Ctrl-C), after
// closing every listener and goroutine it started, or on a start-up error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	logger := cfg.logger(stderr)
	if err := checkDataDir(cfg.Data); err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}

	// 1. Listeners first: a port in use fails before anything is written,
	// and the CRL distribution point must name the address really bound.
	ln, err := openListeners(&cfg)
	if err != nil {
		return err
	}
	defer ln.close()

	// Where clients reach each listener: with -public (or per-listener
	// "advertise" entries) the addresses announced to them differ from
	// the ones bound.
	bound := map[string]net.Addr{"http": ln.http.Addr(), "https": ln.https.Addr(), "sip_tls": ln.sip.Addr(), "sip_wss": ln.wss.Addr(),
		"edge": ln.edge.Addr(), "edge_users": ln.edgeUsers.Addr(), "turn": ln.turnUDP[0].LocalAddr(), "turns": ln.turns.Addr(),
		"media": ln.media.LocalAddr(), "pool": addrOf(ln.pool)}
	nw, err := newNetwork(ctx, &cfg, bound, logger)
	if err != nil {
		return err
	}
	publicNames, publicIPs := nw.publicNames()

	// 2. The store: what users create (meetings, contacts and privacy
	// settings) and the CA's revocations are kept there. By default it is
	// an embedded database in the data directory, which a restart finds
	// again. With Redis, front ends on several machines share it,
	// registrations included.
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}
	var meetings conference.MeetingStore = conference.NewMemoryMeetings()
	var policies presence.PolicyStore = presence.NewMemoryPolicies()
	var locations presence.LocationStore = presence.NewMemoryLocation()
	var publications presence.PublicationStore = presence.NewMemoryPublications()
	var feed presence.Feed                                                           // changes between the front ends of a pool
	var withdrawals presence.Feed                                                    // users whose rights were withdrawn, between them
	var revokedFeed presence.Feed                                                    // certificates revoked, between them
	var adminChanges presence.Feed                                                   // tenants and federation changed, between them
	var liveness poolLiveness                                                        // which front ends are alive
	var hostLeases conference.HostLeases                                             // which front end hosts each live meeting
	var nodeAddress func(ctx context.Context, node, listener string) (string, error) // where they are reached
	var sharedRelaySecrets relaySecretStore                                          // the relays' secrets, shared by the pool
	var federationStore edge.FederationStore = &edge.MemoryFederationStore{}
	var partnerStore edge.PartnerStore = &edge.MemoryPartnerStore{}
	tenantFederation := &tenantPolicies{} // each tenant's own federation policy; in memory unless a store keeps it
	var revocations pki.RevocationStore   // nil: the CA's own ca.json
	var dirStore auth.DirectoryStore      // nil: the data directory's directory.json
	switch cfg.Store {
	case "bolt":
		db, err := store.OpenBolt(filepath.Join(cfg.Data, "parley.db"))
		if err != nil {
			return fmt.Errorf("-store bolt: %w", err)
		}
		defer db.Close()
		meetings, policies, publications, federationStore = db.Meetings(), db.Policies(), db.Publications(), db.Federation()
		revocations, dirStore, partnerStore = db.Revocations(), db.Directory(), db.Partners()
		tenantFederation.store = db.TenantFederation
	case "redis":
		r, err := store.OpenRedis(ctx, store.RedisConfig{URL: cfg.Redis})
		if err != nil {
			return fmt.Errorf("-store redis -redis %s: %w", cfg.Redis, err)
		}
		defer r.Close()
		meetings, policies, locations, publications, federationStore = r.Meetings(), r.Policies(), r.Locations(), r.Publications(), r.Federation()
		feed, withdrawals, revokedFeed, adminChanges = r.Feed(), r.Withdrawals(), r.RevokedCertificates(), r.AdminChanges()
		revocations, dirStore, partnerStore = r.Revocations(), r.Directory(), r.Partners()
		tenantFederation.store = r.TenantFederation
		liveness, hostLeases, nodeAddress, sharedRelaySecrets = r, r.HostLeases(), r.NodeAddress, r
	}
	// The directory of tenants and users: the certificates name the
	// tenants' domains.
	directory, err := openDirectory(ctx, cfg.Data, dirStore, cfg.Tenants, stdout, logger)
	if err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}
	domains, err := tenantDomains(ctx, directory)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	realm := primaryDomain(cfg.Tenants, domains)

	// 3. PKI: the enterprise CA and this server's certificate, which names
	// the CRL distribution point served below.
	crlURL := "http://" + nw.hostPort("http") + "/pki/ca.crl"
	ca, err := pki.OpenCA(filepath.Join(cfg.Data, "ca"), pki.CAConfig{
		CommonName:            "Parley Demo CA",
		CRLDistributionPoints: []string{crlURL},
		Revocations:           revocations, // shared by the front ends of a pool
	})
	if err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}
	serverCert, err := ensureServerCertificate(ca, cfg.Data, crlURL, domains, publicNames, publicIPs, ln.sip.Addr(), ln.pool)
	if err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}
	edgeCert, err := ensureEdgeCertificate(ca, cfg.Data, crlURL, domains, publicNames, publicIPs)
	if err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}
	// The operator's own certificates, if configured, on the listeners
	// users' clients reach; checked now and reloaded when their files
	// change. The CA's certificates serve the rest, and the client side
	// of server-to-server connections.
	own, err := ownCertificates(&cfg, nw.publicNames, logger)
	if err != nil {
		return err
	}
	certFor := func(field string, builtIn *pki.KeyPair) *pki.KeyPair {
		if oc := own[field]; oc != nil {
			return oc.kp
		}
		return builtIn
	}

	// The Authenticator challenges every SIP request and keeps a security
	// association per TLS connection.
	idp, err := cfg.oidcSettings.signIn(directory) // the tenants' identity providers (oidc.go)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	throttle, err := auth.NewThrottle(cfg.Limits.throttle())
	if err != nil {
		return fmt.Errorf("field \"limits.throttle\": %w", err)
	}
	authn, err := auth.New(auth.Config{
		Directory: directory, Realm: realm, Logger: logger, Conferences: conference.Keys(meetings, nil), OIDC: idp.providers,
		Throttle: throttle, NonceTTL: time.Duration(cfg.Limits.NonceTTL),
		Edges: []string{edgeName}, EdgeCA: ca.Certificate(), // the Access Edge below asserts federated users
		Peers:      []string{poolName},                     // and the pool's other front ends their own users
		MD5OnlyFor: []string{"baresip v0.", "baresip v1."}, // libre 1.x fails on any challenge but MD5
		ConnLimits: cfg.Limits.connLimits(httpsOrigins(certFor("https", serverCert).Certificate().Leaf, nw.hostPort("https"))),
	})
	if err != nil {
		return err
	}
	defer authn.Close()

	// Every certificate a peer presents is verified against the CA,
	// revocation included, on every handshake.
	crls, err := pki.NewCRLCache(pki.CRLCacheConfig{Logger: logger})
	if err != nil {
		return err
	}
	defer crls.Close()
	verifier, err := pki.NewVerifier(pki.VerifierConfig{Roots: ca.CertPool(), CRLs: crls})
	if err != nil {
		return err
	}

	// 4. Plain HTTP: the CRL (TLS depends on it, so it cannot need TLS)
	// and the CA certificate for clients to trust.
	mux := http.NewServeMux()
	mux.Handle("GET /pki/ca.crl", ca.CRLHandler())
	mux.HandleFunc("GET /pki/ca.crt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pki.EncodeCertPEM(ca.Certificate()))
	})
	// Monitoring, on the same listener: Prometheus metrics of every
	// component and a health check of the store and the CA.
	stats := newMetrics()
	mux.Handle("GET /metrics", stats.handler())
	mux.Handle("GET /healthz", healthz(meetings, ca))
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}

	// 5. SIP over TLS with sipgo: the application owns the user agent and
	// the server; Parley supplies the TLS configuration and the handlers.
	// The servers it dials by address are the pool's other front ends,
	// whose certificates name the pool, and its own Access Edge, for
	// partners' users.
	// sipgo reads each connection into a buffer of its own, kept while
	// the connection lives. Over TLS it parses messages from the stream
	// whatever the reads' sizes, but over WebSocket it reads each message
	// whole into that buffer and cuts what does not fit (sipgo v1.7.4 too;
	// auth's WebSocket limit refuses such a message instead). The default
	// 16 KB takes a browser's INVITE with audio, simulcast video and data
	// channel (SDP of 6 to 10 KB) and holds 16 KB less per idle
	// connection than sipgo's own 32 KB (BENCHMARKS.md, sign-in storm).
	// A package variable of sipgo's: set once, before any connection
	// reads it.
	readBuffer := cmp.Or(cfg.Limits.SIPReadBuffer, defaultSIPReadBuffer)
	smallReadBuffers.Do(func() { sip.TransportBufferReadSize = uint16(readBuffer) })
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("Parley"),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfigByName(serverCert, verifier, poolName, edgeName)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(logger)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(logger)),
	)
	if err != nil {
		return err
	}
	defer ua.Close()
	sipSrv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	if err != nil {
		return err
	}
	sipClient, err := sipgo.NewClient(ua, sipgo.WithClientLogger(logger))
	if err != nil {
		return err
	}
	defer sipClient.Close()

	// Sign-in and instant messages: the registrar binds each device's
	// connection; the router sends MESSAGEs to every device a user has.
	// In a pool, bindings name this front end (its pool listener), where
	// the others send MESSAGEs for the devices connected here.
	node := ""
	if ln.pool != nil {
		node = ln.pool.Addr().String()
	}
	regCfg := presence.RegistrarConfig{Auth: authn, Store: locations, Node: node, Logger: logger}
	cfg.Limits.registrar(&regCfg)
	registrar, err := presence.NewRegistrar(regCfg)
	if err != nil {
		return fmt.Errorf("field \"limits.registration\": %w", err)
	}
	defer registrar.Close()
	policy, err := presence.NewPresencePolicy(presence.PresencePolicyConfig{Store: policies})
	if err != nil {
		return err
	}
	spim, err := auth.NewThrottle(cfg.Limits.spim()) // one budget per sender for approaching strangers
	if err != nil {
		return fmt.Errorf("field \"limits.throttle.spim_per_sender\": %w", err)
	}
	// Listeners: calls Record-Route through this server, so a dialog's
	// later requests come back here and go out over the right connection.
	router, err := presence.NewRouter(presence.RouterConfig{
		Auth: authn, Directory: directory, Locator: registrar, Client: sipClient, Policy: policy, Spim: spim,
		Connections: ua.TransportLayer(), Logger: logger, Node: node,
		Listeners: map[string]string{"TLS": nw.hostPort("sip_tls"), "WSS": nw.hostPort("sip_wss")},
		Edge:      nw.local("edge"), // partners' users: through this server's Access Edge
	})
	if err != nil {
		return err
	}
	defer router.Close()
	// Presence: devices publish, watchers subscribe, and each watcher sees
	// what the presentity's privacy policy allows.
	presenceSrv, err := presence.NewPresenceServer(presence.PresenceServerConfig{
		Auth: authn, Directory: directory, Policy: policy, Registrar: registrar, Client: sipClient, Spim: spim,
		Connections: ua.TransportLayer(), Logger: logger, Publications: publications, Feed: feed,
	})
	if err != nil {
		return err
	}
	defer presenceSrv.Close()
	// Meetings: the focus decides who enters, keeps the lobby and the
	// roster, and issues the media tokens the media bridge checks, with a
	// key they share (random at start: tokens do not outlive a restart).
	tokens, err := conference.NewTokenIssuer(nil, nil)
	if err != nil {
		return err
	}
	joinBase := "https://" + nw.hostPort("https")
	lobby, err := conference.NewLobby(cfg.Limits.lobby())
	if err != nil {
		return fmt.Errorf("field \"limits.lobby\": %w", err)
	}
	focusCfg := conference.FocusConfig{
		Meetings: meetings, Directory: directory, Tokens: tokens, JoinURL: joinBase, MediaServer: nw.addrPort("media").String(), Lobby: lobby,
		Auth: authn, Client: sipClient, Connections: ua.TransportLayer(), Logger: logger,
		Listeners: map[string]string{"TLS": nw.hostPort("sip_tls"), "WSS": nw.hostPort("sip_wss")},
		Gateways:  []string{cfg.Gateway}, DialInNumbers: []string{cfg.DialIn},
	}
	if hostLeases != nil && node != "" {
		// In a pool, a live meeting is hosted by one front end, which
		// holds its lease (renewed every meetingLeaseTTL/3); the router
		// passes a request for it that reaches another front end on to
		// the host, over the pool's mutual TLS, and stays in the path of
		// the dialog.
		focusCfg.Leases, focusCfg.Host, focusCfg.LeaseTTL = hostLeases, node, meetingLeaseTTL
		focusCfg.Forwarder = router
	}
	focus, err := conference.NewFocus(focusCfg)
	if err != nil {
		return err
	}
	defer focus.Close()
	// The registrar, the presence server and the focus follow sign-in,
	// sign-out and closed connections by themselves: a device whose
	// connection closes is signed out, what it published goes, and it
	// leaves its meetings.
	sipSrv.OnOptions(stats.sip(authn.Require(answerOptions)))
	sipSrv.OnRegister(stats.sip(registrar.HandleRegister))
	sipSrv.OnMessage(stats.sip(focus.Dispatch(router.HandleMessage))) // a meeting's chat (MESSAGE to its focus) goes to the Focus
	// Requests to a meeting's focus (sip:<meeting ID>@example.test) go to
	// the Focus, all others to the router.
	sipSrv.OnInvite(stats.sip(focus.Dispatch(router.HandleInvite)))
	for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE, sip.INFO, sip.UPDATE, sip.PRACK, sip.REFER, sip.NOTIFY} {
		sipSrv.OnRequest(m, stats.sip(focus.Dispatch(router.HandleInDialog))) // requests within calls and meetings
	}
	sipSrv.OnPublish(stats.sip(presenceSrv.HandlePublish))
	// SUBSCRIBE: presence is served here, the conference state by the
	// focus; other event packages go to the user's device.
	sipSrv.OnSubscribe(stats.sip(focus.Dispatch(presence.SubscribeHandler(router.OutboundSubscribe(presenceSrv.HandleSubscribe), router.HandleSubscribe))))

	// The media bridge (the A/V conferencing server): WebRTC participants
	// with a media token from the focus, audio, video and screen share
	// forwarded among them, lobby music for those waiting. Browsers reach
	// the focus and the bridge through the signaling API on the HTTPS
	// listener, with the same identities and tokens as SIP clients.
	bridge, err := media.NewBridge(media.BridgeConfig{Tokens: tokens, Meetings: focus, UDP: ln.media, Logger: logger,
		PublicIPs: []string{nw.addrPort("media").Addr().String()}}) // ICE candidates and SIP answers announce it
	if err != nil {
		return err
	}
	defer bridge.Close()
	// SIP participants' audio (desktop clients, phones, dial-in callers
	// through the gateway) is mixed by the bridge too: the focus answers
	// their INVITEs' SDES-SRTP offers with the bridge's answers, and runs
	// the dial-in IVR on its calls.
	focus.SetMedia(bridge)
	sigCfg := media.SignalingConfig{Focus: focus, Bridge: bridge, Logger: logger}
	cfg.Limits.signaling(&sigCfg)
	signaling, err := media.NewSignaling(sigCfg)
	if err != nil {
		return fmt.Errorf("field \"limits.signaling\": %w", err)
	}
	defer signaling.Close()
	// The web joins of meetings another front end of the pool hosts are
	// relayed to it (webforward.go).
	webFwd := newWebForward(node, focus, nodeAddress, serverCert, verifier, signaling.TicketHandler(), signaling.SocketHandler(), stats.reg, logger)
	defer webFwd.Close()

	// The A/V Edge: a TURN relay for holders of relay credentials, which
	// signed-in users get over SIP (SERVICE) or HTTPS. The secret is made
	// at start: credentials do not outlive a restart. In a pool, the
	// secrets are the pool's, kept in the store and rotated daily
	// (relaysecrets.go): credentials work on every front end's relay.
	relaySecrets := edge.NewSecrets(0, nil)
	var relaySync *relaySecretSync
	if sharedRelaySecrets != nil {
		relaySync = newRelaySecretSync(sharedRelaySecrets, relaySecrets, logger)
		if err := relaySync.sync(ctx); err != nil {
			return fmt.Errorf("relay secrets: %w", err)
		}
	}
	relayCfg := edge.RelayConfig{Realm: realm, Secrets: relaySecrets, Logger: logger,
		UDP: ln.turnUDP, TCP: []net.Listener{ln.turnTCP, tls.NewListener(ln.turns, pki.ServerTLSConfig(certFor("turns", serverCert), verifier))},
		// Relayed addresses carry the public address; relay sockets
		// bind where the listener is bound.
		RelayAddress: net.IP(nw.addrPort("turn").Addr().AsSlice()), RelayBind: addrIP(ln.turnUDP[0].LocalAddr()).String()}
	cfg.Limits.relay(&relayCfg)
	if cfg.RelayAllowLoopback {
		relayCfg.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	relay, err := edge.NewEdgeRelay(relayCfg)
	if err != nil {
		return fmt.Errorf("field \"limits.relay\": %w", err)
	}
	defer relay.Close()
	stats.watch(authn, focus, bridge, relay)
	relayCreds, err := edge.NewRelayCredentials(edge.RelayCredentialsConfig{Secrets: relaySecrets, Auth: authn, URIs: []string{
		"turn:" + nw.hostPort("turn") + "?transport=udp",
		"turn:" + nw.hostPort("turn") + "?transport=tcp",
		"turns:" + nw.name("turns") + "?transport=tcp", // by a name its certificate carries
	}})
	if err != nil {
		return err
	}
	sipSrv.OnRequest(edge.MethodService, stats.sip(relayCreds.HandleService))

	// withdraw ends what a user holds on this front end when their rights
	// are withdrawn (disabled, deleted, new password, signed out by the
	// admin, here or, through the pool's withdrawals feed, on another
	// front end): SIP connections and with them their calls and meetings,
	// web meeting sockets and their media, relay allocations, and the
	// relay credentials handed out to them.
	// The web client's "Sign in with your organization" (websignin.go):
	// the provider sends browsers back to /auth/callback, which makes a
	// web session the meeting ticket takes as the user's identity.
	webSSO := newWebSignIn(idp.web, joinBase+"/auth/callback", authn.VerifyBearer, func(ctx context.Context, id string) (string, error) {
		m, err := focus.Meeting(ctx, conference.MeetingID(id))
		if err != nil {
			return "", err
		}
		return m.Tenant, nil
	}, logger)
	withdraw := func(aor string) int {
		relaySecrets.Revoke(aor)
		return authn.SignOut(aor) + signaling.SignOut(aor) + webFwd.signOut(aor) + relay.CloseUser(aor) + webSSO.signOut(aor)
	}
	// A user their identity provider no longer vouches for (the
	// Authenticator's userinfo check) is withdrawn the same way, here and
	// on the pool's other front ends.
	defer authn.OnWithdrawn(func(aor string) {
		withdraw(aor)
		if withdrawals != nil {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := withdrawals.Announce(ctx, aor); err != nil {
				logger.Error("the pool was not told of a withdrawal", "user", aor, "err", err)
			}
		}
	})()

	// The Access Edge: partners' SIP over mutual TLS, into this server
	// over the edge's own mutual TLS connection, which the Authenticator
	// trusts to assert federated users (Config.Edges above); and remote
	// users' and guests' SIP over TLS, whose credentials this server
	// checks on each request. Guests reach meetings' focus URIs only.
	federation, err := edge.OpenFederation(ctx, federationStore) // the tenant admin's settings, kept in the store
	if err != nil {
		return err
	}
	if err := cfg.Federation.allowPartners(federation); err != nil {
		return fmt.Errorf("field \"federation.partners\": %w", err)
	}
	// It trusts the partners' CAs besides this server's (each partner's
	// domain bound to its own), dials partners by the names DNS or the
	// config gives, and its internal server by address. The partners are
	// the config's and those the admin added (kept in the store).
	fedPartners, err := openPartners(ctx, cfg.Federation, ca.Certificate(), partnerStore, logger)
	if err != nil {
		return err
	}
	partnerResolver := cfg.Federation.resolver()
	initial := fedPartners.current() // later changes reach the edge through follow, below
	edgeVerifier, err := pki.NewVerifier(pki.VerifierConfig{Roots: initial.roots, CRLs: crls})
	if err != nil {
		return err
	}
	edgeUA, err := sipgo.NewUA(sipgo.WithUserAgent("Parley Access Edge"),
		sipgo.WithUserAgenTLSConfig(pki.ClientTLSConfigByName(edgeCert, edgeVerifier, "localhost")),
		sipgo.WithUserAgentDNSResolver(partnerResolver),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(logger)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(logger)))
	if err != nil {
		return err
	}
	defer edgeUA.Close()
	edgeSrv, err := sipgo.NewServer(edgeUA, sipgo.WithServerLogger(logger))
	if err != nil {
		return err
	}
	edgeClient, err := sipgo.NewClient(edgeUA, sipgo.WithClientLogger(logger))
	if err != nil {
		return err
	}
	defer edgeClient.Close()
	accessEdge, err := edge.NewAccessEdge(edge.AccessEdgeConfig{Federation: federation, Domains: domains,
		TenantAllows: tenantFederation.allows, // and each tenant's own policy
		// The edge sits between two networks: partners and remote users
		// reach its listeners (bind them to the external interface),
		// and it reaches the internal SIP listener from this machine.
		Internal: nw.local("sip_tls"), Listener: nw.hostPort("edge"), Client: edgeClient,
		// Partners: the configured ones, bound to their CAs, and any other
		// the federation policy allows, found in DNS. Out to them goes
		// what an internal server of this CA asserts.
		Partners: initial.edges, PartnerCAs: initial.cas, DiscoverPartners: true, Resolver: partnerResolver,
		InternalNames: []string{internalName}, InternalCA: ca.Certificate(),
		Connections: edgeUA.TransportLayer(), Logger: logger, ConnLimits: cfg.Limits.connLimits(nil),
		Meetings: func(uri sip.Uri) bool {
			m, err := focus.Meeting(context.Background(), conference.MeetingID(uri.User))
			return err == nil && strings.EqualFold(m.Tenant, uri.Host)
		}})
	if err != nil {
		return err
	}
	// Partners the admin adds or removes: the edge and its TLS follow.
	fedPartners.follow(func(p *partners) error {
		if err := accessEdge.SetPartners(p.edges, p.cas); err != nil {
			return err
		}
		edgeVerifier.SetRoots(p.roots)
		return nil
	})
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.INFO, sip.SUBSCRIBE, sip.NOTIFY, sip.MESSAGE, sip.OPTIONS,
		sip.UPDATE, sip.PRACK, sip.REFER, sip.REGISTER, sip.PUBLISH, edge.MethodService} {
		edgeSrv.OnRequest(m, accessEdge.HandleRequest)
	}

	// HTTPS: scheduling and relay credentials for signed-in users, the
	// web client at each meeting's join link, and its signaling.
	api := &meetingAPI{focus: focus, meetings: meetings, logger: logger}
	httpsMux := http.NewServeMux()
	httpsMux.Handle("/", api.handler(authn))
	httpsMux.Handle("/relay/credentials", authn.HTTP(relayCreds))
	httpsMux.Handle("/api/me/", (&settingsAPI{policy: policy, logger: logger}).handler(authn))
	tickets := http.HandlerFunc(webFwd.ticket) // here, or from the meeting's host
	httpsMux.Handle("POST /api/meetings/{meeting}/ticket", webSSO.ticket(authn.HTTPForMeeting(func(r *http.Request) string { return r.PathValue("meeting") },
		tickets), tickets)) // users (signed in on the page, or with credentials), and guests with the meeting's key
	webSSO.routes(httpsMux)
	httpsMux.Handle("GET /api/signaling/socket", http.HandlerFunc(webFwd.socket))
	if ln.pool != nil {
		httpsMux.Handle("POST /pool/meetings/{meeting}/ticket", http.HandlerFunc(webFwd.poolTicket)) // the pool's front ends only
	}
	httpsMux.Handle("GET /web/", webAssets())
	// The tenant admin's management API, with the admin bearer token from
	// the data directory.
	adminToken, err := loadAdminToken(cfg.Data)
	if err != nil {
		return fmt.Errorf("-data %s: %w", cfg.Data, err)
	}
	admin := &adminAPI{tokenHash: sha256.Sum256([]byte(adminToken)), staticTokenOff: !idp.staticAdminToken, directory: directory,
		authn: authn, federation: federation, ca: ca, crls: crls, meetings: meetings, focus: focus, logger: logger,
		withdraw: withdraw, withdrawals: withdrawals, revokedFeed: revokedFeed, partners: fedPartners, adminChanges: adminChanges,
		tenantPolicies: tenantFederation,
		holders:        []certificateHolder{authn, relay, accessEdge}}
	admin.onFederation = endFederated(federation, tenantFederation, accessEdge.Domains, presenceSrv, logger)
	admin.onTenants = followTenants(logger, accessEdge,
		reissue{serverCert, func(d []string) (*pki.KeyPair, error) {
			return ensureServerCertificate(ca, cfg.Data, crlURL, d, publicNames, publicIPs, ln.sip.Addr(), ln.pool)
		}},
		reissue{edgeCert, func(d []string) (*pki.KeyPair, error) {
			return ensureEdgeCertificate(ca, cfg.Data, crlURL, d, publicNames, publicIPs)
		}})
	httpsMux.Handle("/admin/", admin.handler())
	httpsSrv := &http.Server{Handler: httpsMux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: pki.ServerTLSConfig(certFor("https", serverCert), verifier), ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}

	// 6. Serve until Ctrl-C, then shut every part down.
	var wg sync.WaitGroup
	errc := make(chan error, 7)
	// Background work (certificate reloads, the pool's withdrawals) stops
	// with the server.
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	for _, watch := range watchCertificates(bgCtx, own, logger) {
		wg.Go(watch)
	}
	if withdrawals != nil {
		// A user disabled, deleted or signed out on another front end is
		// signed out of this one's connections too.
		wg.Go(func() {
			follow(bgCtx, withdrawals, logger, "withdrawals", func(aor string) {
				if n := withdraw(aor); n > 0 {
					logger.Info("signed out: withdrawn on another front end", "user", aor, "ended", n)
				}
			})
		})
	}
	if liveness != nil && node != "" {
		// This front end's heartbeat, and the removal of what dead ones
		// held: their devices' watchers see them offline within
		// nodeTimeout plus a sweep.
		addrs := map[string]string{"sip_tls": nw.hostPort("sip_tls"), "https": nw.hostPort("https")}
		wg.Go(func() { keepPoolAlive(bgCtx, liveness, node, addrs, registrar, logger) })
	}
	if relaySync != nil {
		wg.Go(func() { relaySync.follow(bgCtx) })
	}
	if revokedFeed != nil {
		// A certificate revoked on another front end: this one's CRL is
		// fetched again now, not at its next refresh, and what the
		// certificate opened here is closed.
		wg.Go(func() {
			follow(bgCtx, revokedFeed, logger, "revoked certificates", func(serial string) {
				if err := crls.Refresh(bgCtx); err != nil {
					logger.Warn("CRL not refreshed after a revocation", "err", err)
				}
				if serial != "" {
					admin.closeRevoked(serial)
				}
			})
		})
	}
	if adminChanges != nil {
		// Tenants or the federation changed through another front end's
		// admin API: this one reads them again and follows at once.
		wg.Go(func() {
			follow(bgCtx, adminChanges, logger, "admin changes", func(what string) { admin.followAdminChange(bgCtx, what) })
		})
	}
	wg.Go(func() { errc <- httpSrv.Serve(ln.http) })
	wg.Go(func() { errc <- httpsSrv.ServeTLS(ln.https, "", "") })
	wg.Go(func() {
		errc <- edgeSrv.ServeTLS(accessEdge.Listener(tls.NewListener(ln.edge, pki.MutualTLSServerConfig(edgeCert, edgeVerifier))))
	})
	wg.Go(func() {
		errc <- edgeSrv.ServeTLS(accessEdge.UserListener(tls.NewListener(ln.edgeUsers, pki.ServerTLSConfig(certFor("edge_users", edgeCert), verifier))))
	})
	wg.Go(func() {
		errc <- sipSrv.ServeTLS(authn.Listener(tls.NewListener(ln.sip, pki.ServerTLSConfig(certFor("sip_tls", serverCert), verifier))))
	})
	wg.Go(func() {
		errc <- sipSrv.ServeWSS(authn.WSSListener(tls.NewListener(ln.wss, pki.ServerTLSConfig(certFor("sip_wss", serverCert), verifier))))
	})
	if ln.pool != nil {
		// The other front ends, over mutual TLS: the Authenticator takes
		// their assertions (Config.Peers above).
		wg.Go(func() {
			errc <- sipSrv.ServeTLS(authn.Listener(tls.NewListener(ln.pool, pki.MutualTLSServerConfig(serverCert, verifier))))
		})
	}
	fmt.Fprintf(stdout, "listening http %s\n", ln.http.Addr())
	fmt.Fprintf(stdout, "listening sip-tls %s\n", ln.sip.Addr())
	fmt.Fprintf(stdout, "listening sip-wss %s\n", ln.wss.Addr())
	fmt.Fprintf(stdout, "listening https %s\n", ln.https.Addr())
	fmt.Fprintf(stdout, "listening edge %s\n", ln.edge.Addr())
	fmt.Fprintf(stdout, "listening edge-users %s\n", ln.edgeUsers.Addr())
	fmt.Fprintf(stdout, "listening turn %s\n", ln.turnUDP[0].LocalAddr())
	fmt.Fprintf(stdout, "listening turns %s\n", ln.turns.Addr())
	fmt.Fprintf(stdout, "listening media %s\n", ln.media.LocalAddr())
	if ln.pool != nil {
		fmt.Fprintf(stdout, "listening pool %s\n", ln.pool.Addr())
	}
	printBanner(stdout, domains, cfg.Data, nw.hostPort("http"), "https://"+nw.name("https"), nw.hostPort("sip_tls"))
	logger.Info("parley started", "data", cfg.Data, "ca", filepath.Join(cfg.Data, "ca", pki.CACertFile))

	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errc: // a listener stopped on its own
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = signaling.Shutdown(shutdownCtx) // browsers' sockets: http.Server.Shutdown leaves them open
	webFwd.Close()                      // and those relayed to another front end
	_ = httpSrv.Shutdown(shutdownCtx)
	_ = httpsSrv.Shutdown(shutdownCtx)
	// While the devices are still connected: meetings' participants get a
	// BYE and those in the lobby an answer, watchers are told their
	// subscriptions end, and messages and calls in flight finish; then
	// the media and the relay's allocations close.
	_ = accessEdge.Shutdown(shutdownCtx)
	_ = accessEdge.Close() // what did not drain in time
	_ = focus.Shutdown(shutdownCtx)
	_ = presenceSrv.Shutdown(shutdownCtx)
	_ = router.Shutdown(shutdownCtx)
	_ = bridge.Shutdown(shutdownCtx)
	_ = relay.Shutdown(shutdownCtx)
	_ = ln.sip.Close()
	_ = ln.wss.Close()
	_ = ln.edge.Close()
	_ = ln.edgeUsers.Close()
	if ln.pool != nil {
		_ = ln.pool.Close()
	}
	_ = ua.Close()
	_ = edgeUA.Close()
	stopBackground()
	wg.Wait()
	logger.Info("parley stopped")
	if failed != nil {
		return fmt.Errorf("listener stopped: %w", failed)
	}
	return nil
}

// smallReadBuffers sets sipgo's read buffer size once per process (run
// may run more than once: tests start several servers).
var smallReadBuffers sync.Once

// answerOptions answers an authenticated OPTIONS (RFC 3261 section 11)
// with 200 and what the server supports.
func answerOptions(_ *auth.Identity, req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, PUBLISH, SUBSCRIBE, INFO, UPDATE, PRACK, REFER, NOTIFY"))
	res.AppendHeader(sip.NewHeader("Allow-Events", "presence"))
	res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	_ = tx.Respond(res)
}

// portOf returns the port of a listener's address.
func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}
