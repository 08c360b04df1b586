package conference

import (
	"context"
	"strings"
	"testing"
)

func TestParseControl(t *testing.T) {
	good := map[string]string{
		"add-user":       `<request xmlns="urn:parley:params:xml:ns:conf-control" id="1"><add-user binding="sha-256 AB:CD"/></request>`,
		"admit":          `<request xmlns="urn:parley:params:xml:ns:conf-control" id="2"><admit participant="p1"/></request>`,
		"lock":           `<request xmlns="urn:parley:params:xml:ns:conf-control" id="3"><lock/></request>`,
		"set-access":     `<request xmlns="urn:parley:params:xml:ns:conf-control" id="4"><set-access policy="anyone" dial-in-lobby="true"/></request>`,
		"set-presenters": `<request xmlns="urn:parley:params:xml:ns:conf-control" id="5"><set-presenters policy="chosen"><presenter>sip:bob@example.test</presenter></set-presenters></request>`,
	}
	for op, body := range good {
		r, err := ParseControl([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if r.Op() != op {
			t.Errorf("%s: Op() = %q", op, r.Op())
		}
		// What Marshal writes parses back to the same request.
		again, err := ParseControl(r.Marshal())
		if err != nil || again.Op() != op || again.ID != r.ID {
			t.Errorf("%s: round trip: %v %+v", op, err, again)
		}
	}
	bad := map[string]string{
		"two operations":   `<request xmlns="urn:parley:params:xml:ns:conf-control"><lock/><unlock/></request>`,
		"no operation":     `<request xmlns="urn:parley:params:xml:ns:conf-control"/>`,
		"no participant":   `<request xmlns="urn:parley:params:xml:ns:conf-control"><admit/></request>`,
		"unknown policy":   `<request xmlns="urn:parley:params:xml:ns:conf-control"><set-access policy="everybody"/></request>`,
		"unknown presents": `<request xmlns="urn:parley:params:xml:ns:conf-control"><set-presenters policy="nobody"/></request>`,
		"wrong namespace":  `<request xmlns="urn:example"><lock/></request>`,
		"dtd":              `<!DOCTYPE r [<!ENTITY x "y">]><request xmlns="urn:parley:params:xml:ns:conf-control"><lock/></request>`,
		"deep":             `<request xmlns="urn:parley:params:xml:ns:conf-control"><lock>` + strings.Repeat("<a>", 10) + strings.Repeat("</a>", 10) + `</lock></request>`,
		"too many presenters": `<request xmlns="urn:parley:params:xml:ns:conf-control"><set-presenters policy="chosen">` +
			strings.Repeat("<presenter>sip:a@b</presenter>", maxPresenters+1) + `</set-presenters></request>`,
		"oversized": `<request xmlns="urn:parley:params:xml:ns:conf-control"><lock/>` + strings.Repeat(" ", MaxControlSize) + `</request>`,
	}
	for name, body := range bad {
		if _, err := ParseControl([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseControl: no input panics the control parser, and every
// request it accepts has exactly one operation and survives a round trip.
func FuzzParseControl(f *testing.F) {
	f.Add([]byte(`<request xmlns="urn:parley:params:xml:ns:conf-control" id="1"><add-user binding="x"/></request>`))
	f.Add([]byte(`<request xmlns="urn:parley:params:xml:ns:conf-control"><set-presenters policy="chosen"><presenter>sip:a@b</presenter></set-presenters></request>`))
	f.Add([]byte(`<request xmlns="urn:parley:params:xml:ns:conf-control"><eject participant="p"/></request>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseControl(body)
		if err != nil {
			return
		}
		if r.Op() == "" {
			t.Fatal("accepted a request without an operation")
		}
		again, err := ParseControl(r.Marshal())
		if err != nil || again.Op() != r.Op() {
			t.Fatalf("round trip of %q: %v", body, err)
		}
	})
}

// FuzzParseConferenceInfo: no input panics the parser, and every document
// it accepts validates again after Marshal.
func FuzzParseConferenceInfo(f *testing.F) {
	e := newFocusEnv(f)
	m := e.schedule(MeetingOptions{Access: AccessCompany})
	org := e.join(m, internal("alice"))
	e.join(m, anonymous(m.ID, "G"))
	doc, _ := e.focus.ConferenceInfo(context.Background(), m.ID, org.ID)
	f.Add(doc)
	f.Add([]byte(`<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="sip:a@b" state="partial" version="3"/>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ci, err := ParseConferenceInfo(body)
		if err != nil {
			return
		}
		out := ci.Marshal()
		if _, err := ParseConferenceInfo(out); err != nil {
			t.Fatalf("re-marshalled document refused: %v\n%s", err, out)
		}
	})
}
