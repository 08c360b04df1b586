package conference

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	"github.com/parleyuc/parley/internal/xmlguard"
)

// The conference control protocol: a participant sends one request per
// SIP INFO in its dialog with the focus, with Content-Type ControlType;
// the focus answers in the INFO's response, with a SIP status that says
// the outcome and a ControlResponse body.
//
//	<request xmlns="urn:parley:params:xml:ns:conf-control" id="1">
//	  <add-user binding="sha-256 AB:CD:..."/>
//	</request>
//
// Exactly one operation per request:
//
//	<add-user binding="..."/>        ask to join the A/V conference; binding,
//	                                 optional, is the DTLS fingerprint the
//	                                 media token will be bound to
//	<admit participant="ID"/>        admit from the lobby (presenters)
//	<reject participant="ID"/>       reject from the lobby (presenters)
//	<promote participant="ID"/>      attendee to presenter (presenters)
//	<demote participant="ID"/>       presenter to attendee (organizer)
//	<eject participant="ID"/>        remove (organizer; presenters: attendees)
//	<lock/> <unlock/>                send every newcomer to the lobby (organizer)
//	<mute-all/> <unmute-all/>        hold back every attendee's audio (presenters)
//	<hand raised="true|false"/>      raise or lower one's own hand (anyone joined)
//	<hand raised="false" participant="ID"/>   lower another's hand (presenters)
//	<set-access policy="organizer|company|organization|anyone"
//	            dial-in-lobby="true|false"/>              (organizer)
//	<set-presenters policy="organizer|company|everyone|chosen">
//	  <presenter>sip:user@domain</presenter>...
//	</set-presenters>                                      (organizer)
//
// Participant IDs are those of the conference-info endpoints
// (urn:parley:participant:<ID>). A successful add-user is answered
//
//	<response xmlns="urn:parley:params:xml:ns:conf-control" id="1" code="200" reason="OK">
//	  <media-grant token="pmt1...." server="..." expires="2026-11-23T20:00:00Z"/>
//	</response>
const (
	ControlType = "application/vnd.parley.conf-control+xml"
	ControlNS   = "urn:parley:params:xml:ns:conf-control"
)

// Bounds on a control request.
const (
	MaxControlSize  = 16 << 10
	maxControlDepth = 4
	maxPresenters   = 500
)

// ControlRequest is one control request.
type ControlRequest struct {
	XMLName       xml.Name       `xml:"urn:parley:params:xml:ns:conf-control request"`
	ID            string         `xml:"id,attr"`
	AddUser       *AddUser       `xml:"add-user"`
	Admit         *Target        `xml:"admit"`
	Reject        *Target        `xml:"reject"`
	Promote       *Target        `xml:"promote"`
	Demote        *Target        `xml:"demote"`
	Eject         *Target        `xml:"eject"`
	Lock          *struct{}      `xml:"lock"`
	Unlock        *struct{}      `xml:"unlock"`
	MuteAll       *struct{}      `xml:"mute-all"`
	UnmuteAll     *struct{}      `xml:"unmute-all"`
	Hand          *Hand          `xml:"hand"`
	SetAccess     *SetAccess     `xml:"set-access"`
	SetPresenters *SetPresenters `xml:"set-presenters"`
}

// AddUser asks to join the A/V conference.
type AddUser struct {
	Binding string `xml:"binding,attr,omitempty"`
}

// Target names the participant an operation applies to.
type Target struct {
	Participant string `xml:"participant,attr"`
}

// Hand raises or lowers a hand (Focus.SetHand): the sender's own, or,
// when Participant names another, that participant's (lowering only).
type Hand struct {
	Raised      bool   `xml:"raised,attr"`
	Participant string `xml:"participant,attr,omitempty"`
}

// SetAccess changes the access policy.
type SetAccess struct {
	Policy      string `xml:"policy,attr"`
	DialInLobby bool   `xml:"dial-in-lobby,attr,omitempty"`
}

// SetPresenters changes the presenter policy.
type SetPresenters struct {
	Policy     string   `xml:"policy,attr"`
	Presenters []string `xml:"presenter"`
}

// ControlResponse answers a ControlRequest.
type ControlResponse struct {
	XMLName    xml.Name    `xml:"urn:parley:params:xml:ns:conf-control response"`
	ID         string      `xml:"id,attr"`
	Code       int         `xml:"code,attr"`
	Reason     string      `xml:"reason,attr,omitempty"`
	MediaGrant *MediaGrant `xml:"media-grant"`
}

// MediaGrant is what a participant presents to the media server.
type MediaGrant struct {
	Token   string    `xml:"token,attr"`
	Server  string    `xml:"server,attr"`
	Expires time.Time `xml:"expires,attr"`
}

// Op returns the name of the request's one operation.
func (r *ControlRequest) Op() string {
	ops := r.ops()
	for name, set := range ops {
		if set {
			return name
		}
	}
	return ""
}

func (r *ControlRequest) ops() map[string]bool {
	return map[string]bool{
		"add-user": r.AddUser != nil, "admit": r.Admit != nil, "reject": r.Reject != nil,
		"promote": r.Promote != nil, "demote": r.Demote != nil, "eject": r.Eject != nil,
		"lock": r.Lock != nil, "unlock": r.Unlock != nil, "mute-all": r.MuteAll != nil, "unmute-all": r.UnmuteAll != nil, "hand": r.Hand != nil,
		"set-access": r.SetAccess != nil, "set-presenters": r.SetPresenters != nil,
	}
}

// ParseControl decodes a control request from a peer and checks it has
// exactly one well-formed operation.
func ParseControl(body []byte) (*ControlRequest, error) {
	if len(body) > MaxControlSize {
		return nil, fmt.Errorf("conf-control: larger than %d bytes", MaxControlSize)
	}
	if err := xmlguard.Screen(body, maxControlDepth); err != nil {
		return nil, fmt.Errorf("conf-control: %w", err)
	}
	var r ControlRequest
	if err := xml.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("conf-control: %w", err)
	}
	n := 0
	for _, set := range r.ops() {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("conf-control: %d operations in one request, want 1", n)
	}
	for _, t := range []*Target{r.Admit, r.Reject, r.Promote, r.Demote, r.Eject} {
		if t != nil && t.Participant == "" {
			return nil, errors.New("conf-control: participant is required")
		}
	}
	if r.SetAccess != nil {
		if _, err := ParseAccessPolicy(r.SetAccess.Policy); err != nil {
			return nil, err
		}
	}
	if r.SetPresenters != nil {
		if _, err := ParsePresenterPolicy(r.SetPresenters.Policy); err != nil {
			return nil, err
		}
		if len(r.SetPresenters.Presenters) > maxPresenters {
			return nil, fmt.Errorf("conf-control: more than %d presenters", maxPresenters)
		}
	}
	return &r, nil
}

// Marshal encodes a request.
func (r *ControlRequest) Marshal() []byte { return marshalXML(r) }

// Marshal encodes a response.
func (r *ControlResponse) Marshal() []byte { return marshalXML(r) }

// ParseControlResponse decodes a response (for clients).
func ParseControlResponse(body []byte) (*ControlResponse, error) {
	if len(body) > MaxControlSize {
		return nil, fmt.Errorf("conf-control: larger than %d bytes", MaxControlSize)
	}
	if err := xmlguard.Screen(body, maxControlDepth); err != nil {
		return nil, fmt.Errorf("conf-control: %w", err)
	}
	var r ControlResponse
	if err := xml.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("conf-control: %w", err)
	}
	return &r, nil
}

func marshalXML(v any) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	_ = xml.NewEncoder(&b).Encode(v)
	return b.Bytes()
}
