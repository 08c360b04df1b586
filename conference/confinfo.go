package conference

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parleyuc/parley/internal/xmlguard"
)

// ConferenceInfoType is the MIME type of RFC 4575 conference state.
const ConferenceInfoType = "application/conference-info+xml"

// The XML namespaces of conference state: RFC 4575's, and Parley's
// extension carrying a user's participant type.
const (
	ConferenceInfoNS = "urn:ietf:params:xml:ns:conference-info"
	ExtensionNS      = "urn:parley:params:xml:ns:conference-info-ext"
)

// Bounds on a conference-info document a peer sends.
const (
	MaxConferenceInfoSize = 1 << 20
	maxConferenceDepth    = 12
)

// ConferenceInfo is an RFC 4575 conference-info document: the part of it
// Parley produces and reads. The roster is in Users; a user waiting in the
// lobby has one endpoint with status "pending".
type ConferenceInfo struct {
	XMLName     xml.Name     `xml:"urn:ietf:params:xml:ns:conference-info conference-info"`
	Entity      string       `xml:"entity,attr"`
	State       string       `xml:"state,attr,omitempty"`
	Version     uint32       `xml:"version,attr"`
	Description *Description `xml:"conference-description,omitempty"`
	ConfState   *ConfState   `xml:"conference-state,omitempty"`
	Users       *Users       `xml:"users,omitempty"`
}

// Description is conference-description.
type Description struct {
	DisplayText string `xml:"display-text,omitempty"`
	Subject     string `xml:"subject,omitempty"`
	ConfURIs    *URIs  `xml:"conf-uris,omitempty"`
	ServiceURIs *URIs  `xml:"service-uris,omitempty"`
}

// URIs is a list of URIs (conf-uris, service-uris).
type URIs struct {
	Entry []URIEntry `xml:"entry"`
}

// URIEntry is one of URIs.
type URIEntry struct {
	URI         string `xml:"uri"`
	DisplayText string `xml:"display-text,omitempty"`
	Purpose     string `xml:"purpose,omitempty"`
}

// ConfState is conference-state.
type ConfState struct {
	UserCount *uint32 `xml:"user-count,omitempty"`
	Active    *bool   `xml:"active,omitempty"`
	Locked    *bool   `xml:"locked,omitempty"`
}

// Users is the roster.
type Users struct {
	State string `xml:"state,attr,omitempty"`
	User  []User `xml:"user"`
}

// User is one user of the roster.
type User struct {
	Entity      string     `xml:"entity,attr"`
	State       string     `xml:"state,attr,omitempty"`
	DisplayText string     `xml:"display-text,omitempty"`
	Roles       *Roles     `xml:"roles,omitempty"`
	Endpoints   []Endpoint `xml:"endpoint"`
	// Type is Parley's extension: the participant type.
	Type string `xml:"urn:parley:params:xml:ns:conference-info-ext type,omitempty"`
}

// Roles lists a user's roles.
type Roles struct {
	Entry []string `xml:"entry"`
}

// Endpoint is one of a user's devices in the conference; its entity is
// urn:parley:participant:<participant ID>, the ID control requests name.
type Endpoint struct {
	Entity        string       `xml:"entity,attr"`
	State         string       `xml:"state,attr,omitempty"`
	DisplayText   string       `xml:"display-text,omitempty"`
	Status        string       `xml:"status,omitempty"`
	JoiningMethod string       `xml:"joining-method,omitempty"`
	JoiningInfo   *JoiningInfo `xml:"joining-info,omitempty"`
	// HandRaised is Parley's extension: the participant has raised its
	// hand (Focus.SetHand).
	HandRaised bool `xml:"urn:parley:params:xml:ns:conference-info-ext hand-raised,omitempty"`
}

// JoiningInfo says when an endpoint joined, or entered the lobby.
type JoiningInfo struct {
	When string `xml:"when,omitempty"`
}

// participantURN prefixes an endpoint's entity.
const participantURN = "urn:parley:participant:"

// ParticipantID returns the participant ID an endpoint's entity carries.
func (e *Endpoint) ParticipantID() ParticipantID {
	return ParticipantID(strings.TrimPrefix(e.Entity, participantURN))
}

// The values of RFC 4575's enumerations.
var (
	elementStates   = []string{"", "full", "partial", "deleted"}
	endpointStatus  = []string{"", "pending", "dialing-out", "dialing-in", "alerting", "on-hold", "connected", "muted-via-focus", "disconnecting", "disconnected"}
	joiningMethods  = []string{"", "dialed-in", "dialed-out", "focus-owner"}
	confURIPurposes = []string{"", "participation", "streaming", "web-page", "recording", "event"}
)

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// Validate checks the document against RFC 4575's rules for the elements
// Parley uses: required attributes, enumerated values, and that a full
// document describes full users.
func (ci *ConferenceInfo) Validate() error {
	if ci.Entity == "" {
		return errors.New("conference-info: entity is required")
	}
	if !oneOf(ci.State, elementStates) {
		return fmt.Errorf("conference-info: state %q", ci.State)
	}
	if ci.Description != nil {
		for _, u := range []*URIs{ci.Description.ConfURIs, ci.Description.ServiceURIs} {
			if u == nil {
				continue
			}
			for _, e := range u.Entry {
				if e.URI == "" {
					return errors.New("conference-info: a URI entry needs a uri")
				}
				if u == ci.Description.ConfURIs && !oneOf(e.Purpose, confURIPurposes) {
					return fmt.Errorf("conference-info: purpose %q", e.Purpose)
				}
			}
		}
	}
	if ci.Users == nil {
		return nil
	}
	if !oneOf(ci.Users.State, elementStates) {
		return fmt.Errorf("conference-info: users state %q", ci.Users.State)
	}
	seen := map[string]bool{}
	for _, u := range ci.Users.User {
		if u.Entity == "" {
			return errors.New("conference-info: user entity is required")
		}
		if seen[u.Entity] {
			return fmt.Errorf("conference-info: user %s listed twice", u.Entity)
		}
		seen[u.Entity] = true
		if !oneOf(u.State, elementStates) || (ci.State == "full" || ci.State == "") && u.State != "" && u.State != "full" {
			return fmt.Errorf("conference-info: user %s state %q", u.Entity, u.State)
		}
		if u.Roles != nil && len(u.Roles.Entry) == 0 {
			return fmt.Errorf("conference-info: user %s has an empty roles element", u.Entity)
		}
		for _, e := range u.Endpoints {
			switch {
			case e.Entity == "":
				return fmt.Errorf("conference-info: user %s: endpoint entity is required", u.Entity)
			case !oneOf(e.State, elementStates):
				return fmt.Errorf("conference-info: endpoint %s state %q", e.Entity, e.State)
			case !oneOf(e.Status, endpointStatus):
				return fmt.Errorf("conference-info: endpoint %s status %q", e.Entity, e.Status)
			case !oneOf(e.JoiningMethod, joiningMethods):
				return fmt.Errorf("conference-info: endpoint %s joining-method %q", e.Entity, e.JoiningMethod)
			}
		}
	}
	return nil
}

// ParseConferenceInfo decodes and validates a conference-info document
// from a peer, refusing oversized or deeply nested ones and DTDs.
func ParseConferenceInfo(body []byte) (*ConferenceInfo, error) {
	if len(body) > MaxConferenceInfoSize {
		return nil, fmt.Errorf("conference-info: larger than %d bytes", MaxConferenceInfoSize)
	}
	if err := xmlguard.Screen(body, maxConferenceDepth); err != nil {
		return nil, fmt.Errorf("conference-info: %w", err)
	}
	var ci ConferenceInfo
	if err := xml.Unmarshal(body, &ci); err != nil {
		return nil, fmt.Errorf("conference-info: %w", err)
	}
	if err := ci.Validate(); err != nil {
		return nil, err
	}
	return &ci, nil
}

// Marshal encodes the document.
func (ci *ConferenceInfo) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	_ = enc.Encode(ci) // only strings and numbers: cannot fail
	return b.Bytes()
}

// withVersion returns body (a document Marshal made) with its root's
// version attribute set to v, so one rendering serves every subscriber,
// each with its own version count (RFC 4575 section 4.6).
func withVersion(body []byte, v uint32) []byte {
	const attr = ` version="`
	root := bytes.Index(body, []byte("<conference-info "))
	if root < 0 {
		return body
	}
	i := bytes.Index(body[root:], []byte(attr))
	if i < 0 {
		return body
	}
	i += root
	j := bytes.IndexByte(body[i+len(attr):], '"')
	out := make([]byte, 0, len(body)+10)
	out = append(out, body[:i+len(attr)]...)
	out = strconv.AppendUint(out, uint64(v), 10)
	return append(out, body[i+len(attr)+j:]...)
}

// ErrVersionGap is what Apply returns for a partial document that does
// not follow the state it is applied to: a notification was missed, and
// the client must subscribe again for the full state.
var ErrVersionGap = errors.New("conference-info: a notification is missing; subscribe again")

// Apply brings ci, the state a subscriber holds, up to date with u, the
// next document of its subscription (RFC 4575 section 4.6): a full
// document replaces the state; a partial one, which must carry the next
// version, changes the elements it names and deletes those marked
// deleted.
func (ci *ConferenceInfo) Apply(u *ConferenceInfo) error {
	if u.State == "full" || u.State == "" {
		*ci = *u
		return nil
	}
	if ci.Entity == "" || u.Version != ci.Version+1 || u.Entity != ci.Entity {
		return ErrVersionGap
	}
	ci.Version = u.Version
	if u.Description != nil {
		ci.Description = u.Description
	}
	if s := u.ConfState; s != nil {
		if ci.ConfState == nil {
			ci.ConfState = &ConfState{}
		}
		if s.UserCount != nil {
			ci.ConfState.UserCount = s.UserCount
		}
		if s.Active != nil {
			ci.ConfState.Active = s.Active
		}
		if s.Locked != nil {
			ci.ConfState.Locked = s.Locked
		}
	}
	if u.Users == nil {
		return nil
	}
	if ci.Users == nil {
		ci.Users = &Users{}
	}
	for _, nu := range u.Users.User {
		i := slices.IndexFunc(ci.Users.User, func(x User) bool { return x.Entity == nu.Entity })
		switch {
		case nu.State == "deleted":
			if i >= 0 {
				ci.Users.User = slices.Delete(ci.Users.User, i, i+1)
			}
			continue
		case i < 0:
			ci.Users.User = append(ci.Users.User, User{Entity: nu.Entity})
			i = len(ci.Users.User) - 1
		}
		cur := &ci.Users.User[i]
		if nu.DisplayText != "" {
			cur.DisplayText = nu.DisplayText
		}
		if nu.Roles != nil {
			cur.Roles = nu.Roles
		}
		if nu.Type != "" {
			cur.Type = nu.Type
		}
		for _, ep := range nu.Endpoints {
			j := slices.IndexFunc(cur.Endpoints, func(x Endpoint) bool { return x.Entity == ep.Entity })
			switch {
			case ep.State == "deleted":
				if j >= 0 {
					cur.Endpoints = slices.Delete(cur.Endpoints, j, j+1)
				}
			case j >= 0:
				ep.State = ""
				cur.Endpoints[j] = ep
			default:
				ep.State = ""
				cur.Endpoints = append(cur.Endpoints, ep)
			}
		}
	}
	return nil
}
