package conference

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parleyuc/parley/auth"
)

// ParticipantType is where a participant stands: the "Participant Types"
// of the security model, plus dial-in.
type ParticipantType int

// The participant types.
const (
	// Internal: a user of the tenant inside the corporate network.
	Internal ParticipantType = iota + 1
	// Remote: a user of the tenant joining from outside the network.
	Remote
	// Federated: a user of a partner domain, authenticated by it.
	Federated
	// Anonymous: no identity; holds the meeting's conference key.
	Anonymous
	// DialIn: a caller arriving through a configured PSTN gateway. Anonymous
	// unless authenticated by PIN, in which case Participant.Identity is
	// the user's.
	DialIn
)

var typeNames = map[ParticipantType]string{
	Internal: "internal", Remote: "remote", Federated: "federated", Anonymous: "anonymous", DialIn: "dial-in",
}

// String returns the type's name.
func (t ParticipantType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("ParticipantType(%d)", int(t))
}

// TypeOf returns the participant type of an authenticated identity
// arriving by SIP or the web; dialIn says it came through a trusted PSTN
// gateway.
func TypeOf(id *auth.Identity, dialIn bool) ParticipantType {
	switch {
	case dialIn:
		return DialIn
	case id.Kind == auth.Internal:
		return Internal
	case id.Kind == auth.Remote:
		return Remote
	case id.Kind == auth.Federated:
		return Federated
	}
	return Anonymous
}

// Role is a participant's role in a meeting ("Participant Roles").
type Role int

// The roles. An organizer is by definition also a presenter.
const (
	Attendee Role = iota + 1
	Presenter
	Organizer
)

var roleNames = map[Role]string{Attendee: "attendee", Presenter: "presenter", Organizer: "organizer"}

// String returns the role's name.
func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Leader reports whether the role leads the meeting: organizer or
// presenter.
func (r Role) Leader() bool { return r >= Presenter }

// Admission is what the focus does with someone who asks to join.
type Admission int

// The admissions.
const (
	// Direct: straight into the meeting.
	Direct Admission = iota + 1
	// WaitInLobby: wait until a presenter admits or rejects, or the wait
	// times out.
	WaitInLobby
	// Refused: not for this meeting.
	Refused
)

// String returns the admission's name.
func (a Admission) String() string {
	switch a {
	case Direct:
		return "direct"
	case WaitInLobby:
		return "lobby"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Admission(%d)", int(a))
}

// Candidate is what the policies know of someone asking to join.
type Candidate struct {
	Type ParticipantType
	// AOR is the canonical address of record of an authenticated user
	// (a PIN-authenticated dial-in caller included); empty for anonymous
	// users.
	AOR string
	// Tenant is the domain of the user's tenant; empty for anonymous and
	// unauthenticated dial-in users.
	Tenant string
	// Company is the user's company in the directory (tenant users).
	Company string
	// Meeting is, for anonymous users, the meeting their key opens.
	Meeting MeetingID
}

// authenticated reports whether the candidate has an identity: anything
// but an anonymous user or a dial-in caller without a PIN.
func (c *Candidate) authenticated() bool { return c.AOR != "" }

// tenantUser reports whether c belongs to the meeting's tenant.
func (c *Candidate) tenantUser(m *Meeting) bool {
	return c.authenticated() && c.Type != Federated && c.Tenant == m.Tenant
}

// fromCompany reports whether c is from the organizer's company: a user of
// the tenant whose directory company is the organizer's. A tenant's
// directory that records no companies puts all its users in one company;
// users of the tenant from other companies (a trusted vendor's staff with
// enterprise credentials, say) belong to the organization but not the
// company.
func (c *Candidate) fromCompany(m *Meeting) bool {
	return c.tenantUser(m) && c.Company == m.OrganizerCompany
}

func (c *Candidate) isOrganizer(m *Meeting) bool {
	return c.tenantUser(m) && c.AOR == m.Organizer
}

// AdmissionRule decides whether a newcomer enters a meeting directly,
// waits in the lobby or is refused. The Lobby asks it once per join,
// without holding the meeting's lock (a rule may do I/O), and applies its
// invariants around the answer (see Lobby): an application's rule cannot
// let anyone past a locked meeting, nor anonymous users in before a
// leader or an authenticated user. An error fails the join.
//
// AccessRule, the meeting's access policy, is the default; an
// application's rule typically decides the cases it cares about and hands
// the rest to AccessRule.
type AdmissionRule interface {
	Admission(ctx context.Context, m *Meeting, c Candidate) (Admission, error)
}

// AdmissionFunc adapts a function to an AdmissionRule.
type AdmissionFunc func(ctx context.Context, m *Meeting, c Candidate) (Admission, error)

// Admission calls fn.
func (fn AdmissionFunc) Admission(ctx context.Context, m *Meeting, c Candidate) (Admission, error) {
	return fn(ctx, m, c)
}

// AccessRule is the default AdmissionRule: the meeting's access policy
// (AccessPolicy) and dial-in option, as the security model states them.
//
//   - AccessOrganizer: everyone except the organizer waits in the lobby,
//     dial-in callers too.
//   - AccessCompany: users of the organizer's company enter; the rest wait.
//   - AccessOrganization: users of the tenant enter; the rest wait.
//   - AccessAnyone: everyone enters.
//   - Dial-in callers bypass the lobby unless the meeting's DialInLobby is
//     set, which forces those without a PIN into it.
type AccessRule struct{}

// Admission implements AdmissionRule.
func (AccessRule) Admission(_ context.Context, m *Meeting, c Candidate) (Admission, error) {
	switch {
	case c.isOrganizer(m):
		return Direct, nil
	case m.Access == AccessOrganizer:
		// "Everyone except the organizer must wait in the lobby until
		// admitted", dial-in callers too: the bypass needs another policy.
		return WaitInLobby, nil
	case c.Type == DialIn && !m.DialInLobby:
		return Direct, nil // "People dialing in by phone bypass the lobby"
	case c.Type == DialIn && !c.authenticated():
		return WaitInLobby, nil // forced to the lobby
	case m.Access == AccessAnyone:
		return Direct, nil
	case m.Access == AccessOrganization && c.tenantUser(m):
		return Direct, nil
	case m.Access == AccessCompany && c.fromCompany(m):
		return Direct, nil
	}
	return WaitInLobby, nil
}

// InitialRole is the role c has on entering m, from its presenter policy.
// Anonymous users (dial-in callers without a PIN included) always enter as
// attendees.
func InitialRole(m *Meeting, c Candidate) Role {
	switch {
	case c.isOrganizer(m):
		return Organizer
	case !c.authenticated():
		return Attendee
	}
	switch m.Presenter {
	case PresentersEveryone:
		return Presenter
	case PresentersCompany:
		if c.fromCompany(m) {
			return Presenter
		}
	case PresentersChosen:
		if slices.Contains(m.Presenters, c.AOR) {
			return Presenter
		}
	}
	return Attendee
}

// Domain returns the domain of the candidate's address of record
// (lower case), empty for anonymous users: what a rule checks against a
// list of partner domains.
func (c *Candidate) Domain() string {
	_, host, ok := strings.Cut(c.AOR, "@")
	if !ok {
		return ""
	}
	return strings.ToLower(host)
}
