package presence

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleyuc/parley/internal/xmlguard"
)

// Availability is a user's presence status (the reference's table 1:
// Available, Busy, Do Not Disturb, Away, Offline).
type Availability string

// The presence states, in the order the aggregation prefers them: a user
// busy on one device is busy.
const (
	DoNotDisturb Availability = "do-not-disturb"
	Busy         Availability = "busy"
	Available    Availability = "available"
	Away         Availability = "away"
	Offline      Availability = "offline"
)

var availabilityOrder = []Availability{DoNotDisturb, Busy, Available, Away, Offline}

func (a Availability) valid() bool { return slices.Contains(availabilityOrder, a) }

// PersonalData is the personal part of enhanced presence.
type PersonalData struct {
	Name, Title, Company, Email, TimeZone string
}

// PhoneNumbers are the telephone part of enhanced presence.
type PhoneNumbers struct {
	Work, Mobile, Home string
}

// Period is a span of time.
type Period struct{ Start, End time.Time }

// Calendar is the calendar part of enhanced presence.
type Calendar struct {
	Busy        []Period // free/busy: the busy periods
	OutOfOffice string   // out-of-town notice
	Meeting     string   // details of the current meeting
}

// Presence is a presence document: what a device published, or the view
// of a presentity a watcher is allowed to see. Nil parts are not shared.
type Presence struct {
	Entity       string // the presentity, sip:alice@example.test
	Availability Availability
	Note         string
	Personal     *PersonalData
	Phones       *PhoneNumbers
	Calendar     *Calendar
}

// PIDF namespaces. The enhanced categories travel in Parley's own
// namespace, an extension PIDF allows after the tuples (RFC 3863 section
// 4.1.5):
//
//	<ep:enhanced xmlns:ep="urn:parley:params:xml:ns:pidf:enhanced">
//	  <ep:availability>do-not-disturb</ep:availability>
//	  <ep:personal><ep:name/><ep:title/><ep:company/><ep:email/><ep:time-zone/></ep:personal>
//	  <ep:phones><ep:work/><ep:mobile/><ep:home/></ep:phones>
//	  <ep:calendar>
//	    <ep:busy start="RFC 3339" end="RFC 3339"/>...
//	    <ep:out-of-office/><ep:meeting/>
//	  </ep:calendar>
//	</ep:enhanced>
const (
	NSPIDF      = "urn:ietf:params:xml:ns:pidf"
	NSDataModel = "urn:ietf:params:xml:ns:pidf:data-model"
	NSRPID      = "urn:ietf:params:xml:ns:pidf:rpid"
	NSEnhanced  = "urn:parley:params:xml:ns:pidf:enhanced"
)

// Limits on PIDF documents, checked before decoding. MaxPIDFSize stays
// well under sipgo's 65,535-byte message limit, so an oversized document
// gets a 413 rather than a dropped connection.
const (
	MaxPIDFSize  = 32 << 10
	maxPIDFDepth = 16
)

// Errors from ParsePIDF.
var (
	ErrPIDFTooLarge = errors.New("presence: PIDF document too large")
	ErrBadPIDF      = errors.New("presence: malformed PIDF document")
)

type pidfDoc struct {
	XMLName  xml.Name      `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity   string        `xml:"entity,attr"`
	Tuples   []pidfTuple   `xml:"urn:ietf:params:xml:ns:pidf tuple"`
	Persons  []pidfPerson  `xml:"urn:ietf:params:xml:ns:pidf:data-model person"`
	Notes    []string      `xml:"urn:ietf:params:xml:ns:pidf note"`
	Enhanced *pidfEnhanced `xml:"urn:parley:params:xml:ns:pidf:enhanced enhanced"`
}

type pidfTuple struct {
	ID    string   `xml:"id,attr"`
	Basic string   `xml:"urn:ietf:params:xml:ns:pidf status>basic"`
	Notes []string `xml:"urn:ietf:params:xml:ns:pidf note"`
}

type pidfPerson struct {
	Activities *struct {
		Items []xml.Name `xml:",any"`
	} `xml:"urn:ietf:params:xml:ns:pidf:rpid activities"`
	Notes []string `xml:"urn:ietf:params:xml:ns:pidf:data-model note"`
}

type pidfEnhanced struct {
	Availability string `xml:"availability"`
	Personal     *struct {
		Name     string `xml:"name"`
		Title    string `xml:"title"`
		Company  string `xml:"company"`
		Email    string `xml:"email"`
		TimeZone string `xml:"time-zone"`
	} `xml:"personal"`
	Phones *struct {
		Work   string `xml:"work"`
		Mobile string `xml:"mobile"`
		Home   string `xml:"home"`
	} `xml:"phones"`
	Calendar *struct {
		Busy []struct {
			Start string `xml:"start,attr"`
			End   string `xml:"end,attr"`
		} `xml:"busy"`
		OutOfOffice string `xml:"out-of-office"`
		Meeting     string `xml:"meeting"`
	} `xml:"calendar"`
}

// ParsePIDF decodes a PIDF (RFC 3863) document with RPID activities
// (RFC 4480) and Parley's enhanced categories. It refuses documents over
// MaxPIDFSize (ErrPIDFTooLarge), with a DTD, nested too deep, not
// well-formed, or with a basic status other than open or closed
// (ErrBadPIDF).
func ParsePIDF(body []byte) (*Presence, error) {
	if len(body) > MaxPIDFSize {
		return nil, ErrPIDFTooLarge
	}
	if err := xmlguard.Screen(body, maxPIDFDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPIDF, err)
	}
	var d pidfDoc
	if err := xml.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPIDF, err)
	}
	if !strings.HasPrefix(d.Entity, "sip:") && !strings.HasPrefix(d.Entity, "sips:") && !strings.HasPrefix(d.Entity, "pres:") {
		return nil, fmt.Errorf("%w: entity %q is not a presentity URI", ErrBadPIDF, d.Entity)
	}
	p := &Presence{Entity: d.Entity, Availability: Offline}
	open := false
	for _, t := range d.Tuples {
		switch strings.TrimSpace(t.Basic) {
		case "open":
			open = true
		case "closed":
		default:
			return nil, fmt.Errorf("%w: basic status %q", ErrBadPIDF, t.Basic)
		}
		if p.Note == "" && len(t.Notes) > 0 {
			p.Note = strings.TrimSpace(t.Notes[0])
		}
	}
	if open {
		p.Availability = Available
	}
	for _, person := range d.Persons {
		if person.Activities != nil && open {
			for _, a := range person.Activities.Items {
				if a.Space != NSRPID {
					continue
				}
				switch a.Local {
				case "busy", "on-the-phone", "meeting", "presentation", "performance":
					p.Availability = Busy
				case "away", "sleeping", "vacation", "holiday":
					if p.Availability == Available {
						p.Availability = Away
					}
				}
			}
		}
		if p.Note == "" && len(person.Notes) > 0 {
			p.Note = strings.TrimSpace(person.Notes[0])
		}
	}
	if p.Note == "" && len(d.Notes) > 0 {
		p.Note = strings.TrimSpace(d.Notes[0])
	}
	if e := d.Enhanced; e != nil {
		if a := Availability(strings.TrimSpace(e.Availability)); a != "" {
			if !a.valid() {
				return nil, fmt.Errorf("%w: availability %q", ErrBadPIDF, e.Availability)
			}
			p.Availability = a
		}
		if e.Personal != nil {
			p.Personal = &PersonalData{Name: e.Personal.Name, Title: e.Personal.Title, Company: e.Personal.Company,
				Email: e.Personal.Email, TimeZone: e.Personal.TimeZone}
		}
		if e.Phones != nil {
			p.Phones = &PhoneNumbers{Work: e.Phones.Work, Mobile: e.Phones.Mobile, Home: e.Phones.Home}
		}
		if c := e.Calendar; c != nil {
			p.Calendar = &Calendar{OutOfOffice: c.OutOfOffice, Meeting: c.Meeting}
			for _, b := range c.Busy {
				start, err1 := time.Parse(time.RFC3339, b.Start)
				end, err2 := time.Parse(time.RFC3339, b.End)
				if err1 != nil || err2 != nil || end.Before(start) {
					return nil, fmt.Errorf("%w: busy period %q-%q", ErrBadPIDF, b.Start, b.End)
				}
				p.Calendar.Busy = append(p.Calendar.Busy, Period{Start: start, End: end})
			}
		}
	}
	return p, nil
}

// MarshalPIDF encodes p as a PIDF document with RPID activities and, for
// the parts that are shared, Parley's enhanced categories.
func (p *Presence) MarshalPIDF() []byte {
	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	basic := "open"
	if p.Availability == Offline || p.Availability == "" {
		basic = "closed"
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<presence xmlns="` + NSPIDF + `" xmlns:dm="` + NSDataModel + `" xmlns:rpid="` + NSRPID +
		`" xmlns:ep="` + NSEnhanced + `" entity="` + esc(p.Entity) + `">` + "\n")
	b.WriteString(`<tuple id="t1"><status><basic>` + basic + `</basic></status>`)
	if p.Note != "" {
		b.WriteString(`<note>` + esc(p.Note) + `</note>`)
	}
	b.WriteString("</tuple>\n")
	activity := map[Availability]string{Busy: "busy", DoNotDisturb: "busy", Away: "away"}[p.Availability]
	if activity != "" {
		b.WriteString(`<dm:person id="p1"><rpid:activities><rpid:` + activity + `/></rpid:activities></dm:person>` + "\n")
	}
	b.WriteString(`<ep:enhanced><ep:availability>` + string(orOffline(p.Availability)) + `</ep:availability>`)
	if d := p.Personal; d != nil {
		b.WriteString(`<ep:personal><ep:name>` + esc(d.Name) + `</ep:name><ep:title>` + esc(d.Title) +
			`</ep:title><ep:company>` + esc(d.Company) + `</ep:company><ep:email>` + esc(d.Email) +
			`</ep:email><ep:time-zone>` + esc(d.TimeZone) + `</ep:time-zone></ep:personal>`)
	}
	if ph := p.Phones; ph != nil {
		b.WriteString(`<ep:phones>`)
		for _, n := range []struct{ tag, v string }{{"work", ph.Work}, {"mobile", ph.Mobile}, {"home", ph.Home}} {
			if n.v != "" {
				b.WriteString(`<ep:` + n.tag + `>` + esc(n.v) + `</ep:` + n.tag + `>`)
			}
		}
		b.WriteString(`</ep:phones>`)
	}
	if c := p.Calendar; c != nil {
		b.WriteString(`<ep:calendar>`)
		for _, per := range c.Busy {
			b.WriteString(`<ep:busy start="` + per.Start.UTC().Format(time.RFC3339) + `" end="` + per.End.UTC().Format(time.RFC3339) + `"/>`)
		}
		if c.OutOfOffice != "" {
			b.WriteString(`<ep:out-of-office>` + esc(c.OutOfOffice) + `</ep:out-of-office>`)
		}
		if c.Meeting != "" {
			b.WriteString(`<ep:meeting>` + esc(c.Meeting) + `</ep:meeting>`)
		}
		b.WriteString(`</ep:calendar>`)
	}
	b.WriteString("</ep:enhanced>\n</presence>\n")
	return b.Bytes()
}

func orOffline(a Availability) Availability {
	if a == "" {
		return Offline
	}
	return a
}
