package presence

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// RFC 3863 section 6 (abridged to one tuple) and an RFC 4480 person.
const rfc3863Example = `<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf" entity="pres:someone@example.com">
  <impp:tuple id="sg89ae">
    <impp:status><impp:basic>open</impp:basic></impp:status>
    <impp:contact priority="0.8">tel:+09012345678</impp:contact>
  </impp:tuple>
</impp:presence>`

const rpidBusy = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
  xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.test">
  <tuple id="t1"><status><basic>open</basic></status></tuple>
  <dm:person id="p1"><rpid:activities><rpid:on-the-phone/></rpid:activities><dm:note>In a call</dm:note></dm:person>
</presence>`

func TestParsePIDF(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Availability
		note string
	}{
		{"RFC 3863 example, open", rfc3863Example, Available, ""},
		{"RPID activity on-the-phone is busy", rpidBusy, Busy, "In a call"},
		{"closed is offline", strings.Replace(rfc3863Example, ">open<", ">closed<", 1), Offline, ""},
		{"RPID away", strings.Replace(rpidBusy, "on-the-phone", "away", 1), Away, "In a call"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePIDF([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if p.Availability != tt.want || p.Note != tt.note {
				t.Fatalf("got %s %q, want %s %q", p.Availability, p.Note, tt.want, tt.note)
			}
		})
	}
}

func TestParsePIDFRefuses(t *testing.T) {
	deep := `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">` + strings.Repeat("<x>", 50) + strings.Repeat("</x>", 50) + `</presence>`
	tests := []struct {
		name string
		doc  string
		err  error
	}{
		{"a DTD (entity expansion, external references)", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>` + rpidBusy[strings.Index(rpidBusy, "<presence"):], ErrBadPIDF},
		{"nesting too deep", deep, ErrBadPIDF},
		{"oversized", `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>` + strings.Repeat("a", MaxPIDFSize) + `</note></presence>`, ErrPIDFTooLarge},
		{"not XML", "hello", ErrBadPIDF},
		{"basic status unknown (baresip before it registers)", strings.Replace(rfc3863Example, ">open<", ">unknown<", 1), ErrBadPIDF},
		{"wrong namespace", strings.ReplaceAll(rfc3863Example, "urn:ietf:params:xml:ns:pidf", "urn:example:other"), ErrBadPIDF},
		{"entity not a URI", strings.Replace(rfc3863Example, "pres:someone@example.com", "someone", 1), ErrBadPIDF},
		{"unknown availability", strings.Replace(rpidBusy, "</presence>", `<ep:enhanced xmlns:ep="`+NSEnhanced+`"><ep:availability>napping</ep:availability></ep:enhanced></presence>`, 1), ErrBadPIDF},
		{"unterminated", rpidBusy[:len(rpidBusy)-12], ErrBadPIDF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePIDF([]byte(tt.doc)); !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
		})
	}
}

func TestPIDFRoundTrip(t *testing.T) {
	start := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	p := &Presence{
		Entity: "sip:alice@example.test", Availability: DoNotDisturb, Note: `Presenting <Q4> & "results"`,
		Personal: &PersonalData{Name: "Alice", Title: "Engineer", Company: "Example", Email: "alice@example.test", TimeZone: "Europe/Paris"},
		Phones:   &PhoneNumbers{Work: "+1 555 0100", Mobile: "+1 555 0101"},
		Calendar: &Calendar{Busy: []Period{{start, start.Add(time.Hour)}}, OutOfOffice: "Back Monday", Meeting: "Quarterly review"},
	}
	doc := p.MarshalPIDF()
	back, err := ParsePIDF(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip changed the document:\n got %+v\nwant %+v\n%s", back, p, doc)
	}
	// Clients that only know PIDF and RPID still see the status.
	if !strings.Contains(string(doc), "<basic>open</basic>") || !strings.Contains(string(doc), "<rpid:busy/>") {
		t.Fatalf("document lacks the standard status:\n%s", doc)
	}
}

// FuzzParsePIDF: the parser never panics, and whatever it accepts
// survives being written out and read again.
func FuzzParsePIDF(f *testing.F) {
	for _, s := range []string{rfc3863Example, rpidBusy, string((&Presence{Entity: "sip:a@b", Availability: Busy,
		Personal: &PersonalData{Name: "A"}, Calendar: &Calendar{Meeting: "m"}}).MarshalPIDF())} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePIDF(body)
		if err != nil {
			return
		}
		again, err := ParsePIDF(p.MarshalPIDF())
		if err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, p.MarshalPIDF())
		}
		if again.Availability != p.Availability || again.Entity != p.Entity {
			t.Fatalf("availability %s/%s or entity %q/%q changed in a round trip", p.Availability, again.Availability, p.Entity, again.Entity)
		}
	})
}
