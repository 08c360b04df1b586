// Package edge is the perimeter: the Access Edge, which carries the SIP
// signaling of federated partners, remote users and anonymous meeting
// guests into the network, the federation policy it applies, and the A/V
// Edge relay.
//
// An [AccessEdge] accepts partner servers over mutual TLS
// (pki.MutualTLSServerConfig): a partner's certificate must name the
// domain of every user it sends for. Requests from domains the
// [Federation] blocks are refused (federation is open by default, as the
// security model says, and the tenant admin changes it at run time), as
// are requests for domains the edge does not serve; each federated sender
// and domain is throttled. What passes goes to the internal server over the
// edge's own mutual TLS connection with the user asserted in
// P-Asserted-Identity, which the internal server's auth.Authenticator
// trusts from the edge's certificate only (auth.Config.Edges): a
// federated user is then an auth.Federated identity, who may join and be
// promoted in meetings but not schedule them. The edge Record-Routes
// itself with a signed flow token, so the dialog's later requests (the
// focus's NOTIFYs and BYEs, the user's INFOs) pass through it over the
// same two connections.
//
// Outbound, an internal server whose certificate the edge knows
// (AccessEdgeConfig.InternalNames) sends its users' requests for partner
// domains to the edge (presence.RouterConfig.Edge), which sends them on to
// the partner's edge (AccessEdgeConfig.Partners) if the federation policy
// allows the domain, and relays the answers only if that edge's
// certificate names its domain.
//
// [EdgeRelay] is the A/V Edge: a TURN relay for holders of the
// credentials [RelayCredentials] issues, or of the application's own
// (RelayConfig.AuthHandler), with UDP relays (pion/turn/v2) and TCP
// relays (RFC 6062, served by the edge itself) for clients that reach it
// only over TCP or TLS. It never relays to the host's own addresses nor
// to internal ranges unless allowed, and drains with Shutdown (see its
// documentation and the example). ChannelData and Send indications for
// what pion granted are relayed by the edge itself, in batches on Linux;
// [ListenUDPShared] opens one UDP listener socket per core on one
// address.
//
// Remote users of the tenants and anonymous guests connect to the edge's
// other listener ([AccessEdge.UserListener], TLS without a client
// certificate). The edge asserts nothing for them: their requests go
// inside with their own credentials (Digest, bearer, or a meeting's
// conference key), which the internal server checks on every request,
// since the edge's connection carries many users (auth trusts it for no
// security association, and names each user's connection to the edge by
// auth.EdgeFlowHeader). A tenant's user is a remote user inside; anyone
// else is an anonymous guest who may only join a meeting
// (AccessEdgeConfig.Meetings): INVITE or SUBSCRIBE to the conference
// package at a focus URI. A REGISTER gets a Path through the edge, bound
// to the user's connection, so the user's device is reached over it
// (430 Flow Failed once it is gone); a dialog gets a Record-Route, and
// its later requests pass the edge both ways, each side held to its own
// connection. Requests crossing the edge carry only the edge's Via, and
// Contacts show the edge's address, not the inside's.
package edge
