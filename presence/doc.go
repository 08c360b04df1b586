// Package presence is where users sign in and find each other: the SIP
// registrar and location service, and the routing of requests (instant
// messages first) to every device a user has registered.
//
// A [Registrar] handles REGISTER (RFC 3261 section 10) over TLS, every
// request authenticated through package auth: several bindings per address
// of record, expiry between a minimum (423 Interval Too Brief) and a
// maximum, refresh, removal (Expires: 0 and "*"), Path (RFC 3327), and
// bindings tied to the connection they came on (RFC 5626 flows), so that
// requests reach a client behind NAT over its own TLS connection. Its
// state is behind the small [LocationStore] interface.
//
// A [Router] forwards requests for registered users to their bindings:
// MESSAGE (RFC 3428) forks to all of them; an INVITE forks to all of them,
// the first answer wins and the others are canceled, and the Router stays
// in the dialog's path (Record-Route with a signed flow token) so that
// in-dialog requests reach each side over its own connection; an unknown
// user gets 404, a known one with no binding 480.
//
// A [PresenceServer] handles PUBLISH (RFC 3903) and SUBSCRIBE/NOTIFY for
// the presence event (RFC 6665, RFC 3856) with PIDF documents (RFC 3863,
// [ParsePIDF]) carrying RPID activities (RFC 4480) and the enhanced
// presence categories in Parley's extension namespace ([NSEnhanced]). A
// user's devices' publications are aggregated into one view, and each
// watcher is sent what the [PresencePolicy] lets it see: relationship
// levels, privacy mode and blocking, re-applied at once when they change.
// Requests to users who do not have the sender as a contact are
// rate-limited per sender and per federated domain (spim). Publications are
// behind the [PublicationStore] interface, and a change is read from the
// stores once however many watchers it has.
//
// # Composition
//
// An application assembles the types on its own sipgo server; only the
// Focus's connection hook is left to it (package conference):
//
//	registrar, _ := presence.NewRegistrar(presence.RegistrarConfig{Auth: authn})
//	policy, _ := presence.NewPresencePolicy(presence.PresencePolicyConfig{})
//	router, _ := presence.NewRouter(presence.RouterConfig{Auth: authn, Directory: dir,
//		Locator: registrar, Client: client, Policy: policy, Listeners: listeners})
//	ps, _ := presence.NewPresenceServer(presence.PresenceServerConfig{Auth: authn, Directory: dir,
//		Policy: policy, Registrar: registrar, Client: client})
//	srv.OnRegister(registrar.HandleRegister)
//	srv.OnMessage(router.HandleMessage)
//	srv.OnInvite(router.HandleInvite)
//	srv.OnPublish(ps.HandlePublish)
//	srv.OnSubscribe(presence.SubscribeHandler(ps.HandleSubscribe, router.HandleSubscribe))
//	go srv.ServeTLS(authn.Listener(tls.NewListener(ln, pki.ServerTLSConfig(kp, verifier))))
//
// The hooks between them register themselves: the Registrar with the
// *auth.Authenticator (a closed connection signs its devices out), the
// PresenceServer with the Registrar and the VisibilityRule. Every hook
// follows one rule, OnX(fn) (remove func()). The visibility rule is the
// [VisibilityRule] interface; [PresencePolicy] is the reference text's
// rule and the default, and an application wraps or replaces it
// (ExamplePresencePolicy). On shutdown, PresenceServer.Shutdown and
// Router.Shutdown drain like net/http's, then Close.
//
// Several servers form a pool when they share the stores (package store's
// Redis): [Binding.Node] names the front end holding a device's
// connection, a [Feed] carries presence changes to the watchers on the
// other front ends, and the Router passes a MESSAGE for a device on
// another front end to it ([RouterConfig.Node]).
package presence
