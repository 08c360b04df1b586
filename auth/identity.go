package auth

import (
	"fmt"
	"time"
)

// Kind says where a party stands relative to the tenant.
type Kind int

// The participant types of the security model.
const (
	// Internal: a user of the tenant inside the corporate network.
	Internal Kind = iota + 1
	// Remote: a user of the tenant joining from outside the network.
	Remote
	// Federated: a user of a partner domain, authenticated by that domain.
	Federated
	// Anonymous: no identity in any trusted directory; holds a conference
	// key for one meeting.
	Anonymous
)

// String returns the kind's name: internal, remote, federated or anonymous.
func (k Kind) String() string {
	switch k {
	case Internal:
		return "internal"
	case Remote:
		return "remote"
	case Federated:
		return "federated"
	case Anonymous:
		return "anonymous"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Method says how an identity was proven.
type Method string

// The ways a party can prove who it is.
const (
	MethodBearer        Method = "bearer"         // OAuth 2.0 access token
	MethodDigest        Method = "digest"         // directory password
	MethodConferenceKey Method = "conference-key" // anonymous, Digest with a meeting's key
	MethodCertificate   Method = "certificate"    // TLS client certificate
)

// Identity is who a request comes from, as established by the
// Authenticator. It is immutable once returned.
type Identity struct {
	// URI is the party's SIP address of record, e.g. sip:alice@example.test.
	// For anonymous users it is a per-association URI in the
	// anonymous.invalid domain (RFC 3323), never one of the tenant's.
	URI string
	// DisplayName from the directory, or, for anonymous users, the name
	// they gave.
	DisplayName string
	// Tenant is the SIP domain of the user's tenant; empty for anonymous
	// users.
	Tenant string
	Kind   Kind
	Method Method
	// Meeting is, for anonymous users, the one meeting their conference
	// key opens. Empty otherwise.
	Meeting string
	// Expires is when the proof stops being valid (a bearer token's
	// expiry). Zero means it lasts as long as the security association.
	// A connection signed in with a token is closed at its expiry unless
	// a request with a newer token has renewed it.
	Expires time.Time
	// MeetingLicense says the user may organize meetings: the directory's
	// User.MeetingLicense, or a bearer token's claims granting it
	// (OIDCProvider.LicenseClaim).
	MeetingLicense bool
	// TenantAdmin says the user administers Tenant: a bearer token whose
	// claims carry the provider's AdminClaim value.
	TenantAdmin bool
}

// clone returns a copy, so no caller can change an identity another
// request (or the security association) holds.
func (id *Identity) clone() *Identity {
	c := *id
	return &c
}

// MayJoin reports whether the identity may take part in meeting: any
// authenticated user may ask (the meeting's access policy decides), an
// anonymous user only for the meeting its key opened.
func (id *Identity) MayJoin(meeting string) bool {
	if id.Kind == Anonymous {
		return id.Meeting != "" && id.Meeting == meeting
	}
	return true
}
