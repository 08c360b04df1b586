package presence

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

func contactsOf(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("Contact") {
		out = append(out, h.Value())
	}
	return out
}

func TestRegisterBindsTheFlow(t *testing.T) {
	e := newEnv(t)
	alice := e.phone("alice")
	res := alice.register(600)
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	cs := contactsOf(res)
	if len(cs) != 1 || !strings.Contains(cs[0], "expires=600") {
		t.Fatalf("200 OK contacts %q, want the binding with expires=600", cs)
	}
	bs, err := e.registrar.Lookup(context.Background(), "sip:alice@example.test")
	if err != nil || len(bs) != 1 {
		t.Fatalf("lookup: %v %v", bs, err)
	}
	if bs[0].Transport != "TLS" || !strings.HasPrefix(bs[0].Source, "127.0.0.1:") || bs[0].UserAgent != "phone-alice" {
		t.Fatalf("binding %+v does not record the flow it came on", bs[0])
	}
}

func TestRegisterExpiryRules(t *testing.T) {
	e := newEnv(t)
	alice := e.phone("alice")
	res := alice.register(30)
	if res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil || res.GetHeader("Min-Expires").Value() != "60" {
		t.Fatalf("Expires 30: %d, Min-Expires %v; want 423 with Min-Expires: 60", res.StatusCode, res.GetHeader("Min-Expires"))
	}
	if res := alice.register(999999); res.StatusCode != 200 || !strings.Contains(contactsOf(res)[0], "expires=3600") {
		t.Fatalf("Expires 999999: %d %q, want it cut to 3600", res.StatusCode, contactsOf(res))
	}
	if res := alice.register(-1); res.StatusCode != 200 || !strings.Contains(contactsOf(res)[0], "expires=3600") {
		t.Fatalf("no Expires: %d %q, want the default 3600", res.StatusCode, contactsOf(res))
	}
	// A binding past its expiry is gone.
	if res := alice.register(60); res.StatusCode != 200 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	e.clock.advance(61 * time.Second)
	if bs, _ := e.registrar.Lookup(context.Background(), alice.aor()); len(bs) != 0 {
		t.Fatalf("%d bindings after expiry", len(bs))
	}
}

func TestRegisterSeveralDevicesRefreshAndRemove(t *testing.T) {
	e := newEnv(t)
	laptop, mobile := e.phone("alice"), e.phone("alice")
	laptop.register(600)
	res := mobile.register(600, sip.NewHeader("Contact", "<sip:alice@10.0.0.2;transport=tls>"))
	// The mobile registered two contacts; the laptop one.
	if n := len(contactsOf(res)); n != 3 {
		t.Fatalf("%d bindings listed, want 3: %q", n, contactsOf(res))
	}
	// A refresh keeps one binding per contact.
	if n := len(contactsOf(laptop.register(900))); n != 3 {
		t.Fatalf("after a refresh: %d bindings, want 3", n)
	}
	// Expires: 0 removes the laptop's binding.
	if n := len(contactsOf(laptop.register(0))); n != 2 {
		t.Fatalf("after removal: %d bindings, want 2", n)
	}
	// Contact: * with Expires: 0 removes all.
	var to sip.Uri
	_ = sip.ParseUri(mobile.aor(), &to)
	res = mobile.do(mobile.request(sip.REGISTER, "sip:example.test", &sip.ToHeader{Address: to},
		sip.NewHeader("Contact", "*"), sip.NewHeader("Expires", "0")))
	if res.StatusCode != 200 || len(contactsOf(res)) != 0 {
		t.Fatalf("Contact *: %d %q, want 200 with no bindings", res.StatusCode, contactsOf(res))
	}
	res = mobile.do(mobile.request(sip.REGISTER, "sip:example.test", &sip.ToHeader{Address: to},
		sip.NewHeader("Contact", "*"), sip.NewHeader("Expires", "60")))
	if res.StatusCode != 400 {
		t.Fatalf("Contact * with Expires 60: %d, want 400", res.StatusCode)
	}
}

func TestRegisterOnlyYourOwnAddress(t *testing.T) {
	e := newEnv(t)
	alice := e.phone("alice")
	var bob sip.Uri
	_ = sip.ParseUri("sip:bob@example.test", &bob)
	res := alice.do(alice.request(sip.REGISTER, "sip:example.test", &sip.ToHeader{Address: bob},
		sip.NewHeader("Contact", "<sip:eve@127.0.0.1;transport=tls>")))
	if res.StatusCode != 403 {
		t.Fatalf("alice registering bob's address: %d, want 403", res.StatusCode)
	}
	if bs, _ := e.registrar.Lookup(context.Background(), "sip:bob@example.test"); len(bs) != 0 {
		t.Fatal("a binding was created for bob")
	}
}

func TestRegisterQueryAndOutOfOrder(t *testing.T) {
	e := newEnv(t)
	alice := e.phone("alice")
	first := alice.register(600)
	// A REGISTER without Contact asks for the current bindings.
	var to sip.Uri
	_ = sip.ParseUri(alice.aor(), &to)
	q := alice.do(alice.request(sip.REGISTER, "sip:example.test", &sip.ToHeader{Address: to}))
	if q.StatusCode != 200 || len(contactsOf(q)) != 1 {
		t.Fatalf("query: %d %q", q.StatusCode, contactsOf(q))
	}
	// A REGISTER of the same Call-ID with an older CSeq is out of order.
	callID := sip.CallIDHeader(first.CallID().Value())
	req := alice.request(sip.REGISTER, "sip:example.test", &sip.ToHeader{Address: to},
		sip.NewHeader("Contact", alice.contact), sip.NewHeader("Expires", "600"),
		&callID, &sip.CSeqHeader{SeqNo: 1, MethodName: sip.REGISTER})
	if res := alice.do(req); res.StatusCode != 500 {
		t.Fatalf("out-of-order REGISTER: %d, want 500", res.StatusCode)
	}
}

func TestRegisterOutboundAndPath(t *testing.T) {
	e := newEnv(t)
	alice := e.phone("alice")
	var to sip.Uri
	_ = sip.ParseUri(alice.aor(), &to)
	inst := `"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"`
	reg := func(contact string) *sip.Response {
		return alice.do(alice.request(sip.REGISTER, "sip:example.test", &sip.ToHeader{Address: to},
			sip.NewHeader("Contact", contact), sip.NewHeader("Expires", "600"),
			sip.NewHeader("Supported", "outbound, path"), sip.NewHeader("Path", "<sip:edge.example.test;lr>")))
	}
	res := reg("<sip:alice@192.0.2.10:5061;transport=tls>;+sip.instance=" + inst + ";reg-id=1")
	if res.StatusCode != 200 || res.GetHeader("Require") == nil || res.GetHeader("Path") == nil {
		t.Fatalf("outbound REGISTER: %d, Require %v, Path %v", res.StatusCode, res.GetHeader("Require"), res.GetHeader("Path"))
	}
	// The same instance and reg-id from a new address replaces its binding.
	if res := reg("<sip:alice@192.0.2.99:5061;transport=tls>;+sip.instance=" + inst + ";reg-id=1"); res.StatusCode != 200 {
		t.Fatalf("re-REGISTER of the instance: %d", res.StatusCode)
	}
	bs, _ := e.registrar.Lookup(context.Background(), alice.aor())
	if len(bs) != 1 || !strings.Contains(bs[0].Contact, "192.0.2.99") || len(bs[0].Path) != 1 {
		t.Fatalf("bindings %+v, want the instance's one binding, moved, with its Path", bs)
	}
}

func TestBindingLimitNotFooledByPhantomRemovals(t *testing.T) {
	reg, err := NewRegistrar(RegistrarConfig{Auth: noAuth{}, MaxBindings: 2})
	if err != nil {
		t.Fatal(err)
	}
	alice := &auth.Identity{URI: "sip:alice@example.test"}
	msg := func(callID, contacts string) *sip.Request {
		m, err := sip.ParseMessage([]byte("REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK" + callID +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: " + callID +
			"\r\nCSeq: 1 REGISTER\r\nContact: " + contacts + "\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		req := m.(*sip.Request)
		req.SetSource("127.0.0.1:5999")
		req.SetTransport("TLS")
		return req
	}
	if res := reg.register(msg("a", "<sip:a@192.0.2.1>, <sip:a@192.0.2.2>"), alice); res.StatusCode != 200 {
		t.Fatalf("two devices: %d", res.StatusCode)
	}
	// A third device, "paid for" by removing a device that does not exist.
	if res := reg.register(msg("b", "<sip:a@192.0.2.3>, <sip:a@192.0.2.99>;expires=0"), alice); res.StatusCode != 403 {
		t.Fatalf("a third device at a limit of 2: %d, want 403", res.StatusCode)
	}
	if bs, _ := reg.Lookup(context.Background(), alice.URI); len(bs) != 2 {
		t.Fatalf("%d bindings, limit 2", len(bs))
	}
}

func TestRemoveFlowDropsOnlyThatFlowsBindings(t *testing.T) {
	store := NewMemoryLocation()
	ctx := context.Background()
	now := time.Now()
	b := func(aor, contact, source string) Binding {
		return Binding{AOR: aor, Contact: contact, Transport: "TLS", Source: source, Expires: now.Add(time.Hour)}
	}
	_ = store.Update(ctx, "sip:alice@example.test", []Binding{b("sip:alice@example.test", "sip:a1@x", "192.0.2.1:1000"),
		b("sip:alice@example.test", "sip:a2@x", "192.0.2.2:2000")}, nil, false)
	_ = store.Update(ctx, "sip:bob@example.test", []Binding{b("sip:bob@example.test", "sip:b1@x", "192.0.2.1:1000")}, nil, false)
	aors, err := store.RemoveFlow(ctx, Flow{Transport: "TLS", Source: "192.0.2.1:1000"})
	if err != nil || len(aors) != 2 {
		t.Fatalf("RemoveFlow: %v %v, want alice and bob", aors, err)
	}
	if bs, _ := store.Bindings(ctx, "sip:alice@example.test", now); len(bs) != 1 || bs[0].Source != "192.0.2.2:2000" {
		t.Fatalf("alice's bindings %+v, want only the other flow's", bs)
	}
	if bs, _ := store.Bindings(ctx, "sip:bob@example.test", now); len(bs) != 0 {
		t.Fatalf("bob's bindings %+v, want none", bs)
	}
	if aors, _ := store.RemoveFlow(ctx, Flow{Transport: "WSS", Source: "192.0.2.2:2000"}); len(aors) != 0 {
		t.Fatalf("a flow of another transport removed %v", aors)
	}
}

// flakyStore is a LocationStore whose engine can be down.
type flakyStore struct {
	*MemoryLocation
	down atomic.Bool
}

func (s *flakyStore) Bindings(ctx context.Context, aor string, now time.Time) ([]Binding, error) {
	if s.down.Load() {
		return nil, errors.New("connection refused")
	}
	return s.MemoryLocation.Bindings(ctx, aor, now)
}

func (s *flakyStore) Update(ctx context.Context, aor string, put []Binding, remove []string, removeAll bool) error {
	if s.down.Load() {
		return errors.New("connection refused")
	}
	return s.MemoryLocation.Update(ctx, aor, put, remove, removeAll)
}

// TestRegisterWhileTheStoreIsDown: with the location store unreachable a
// REGISTER gets 503 and a Retry-After (a client retries it), nothing is
// lost, and registering works again once the store is back.
func TestRegisterWhileTheStoreIsDown(t *testing.T) {
	store := &flakyStore{MemoryLocation: NewMemoryLocation()}
	reg, err := NewRegistrar(RegistrarConfig{Auth: noAuth{}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	alice := &auth.Identity{URI: "sip:alice@example.test"}
	cseq := 0
	register := func(contact string) *sip.Response {
		cseq++
		m, err := sip.ParseMessage([]byte("REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK" + strconv.Itoa(cseq) +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: c1\r\nCSeq: " + strconv.Itoa(cseq) +
			" REGISTER\r\nContact: " + contact + "\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		req := m.(*sip.Request)
		req.SetSource("127.0.0.1:5999")
		req.SetTransport("TLS")
		return reg.register(req, alice)
	}
	if res := register("<sip:a@192.0.2.1>"); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", res.StatusCode)
	}
	store.down.Store(true)
	res := register("<sip:a@192.0.2.2>")
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("REGISTER with the store down: %v, want 503 with Retry-After", res)
	}
	store.down.Store(false)
	if bs, _ := reg.Lookup(context.Background(), alice.URI); len(bs) != 1 || bs[0].Contact != "sip:a@192.0.2.1" {
		t.Fatalf("after the failure, bindings %+v: want the first device only", bs)
	}
	if res := register("<sip:a@192.0.2.2>"); res.StatusCode != 200 {
		t.Fatalf("REGISTER once the store is back: %d", res.StatusCode)
	}
}

// TestRegisterRefusesContactsNotUTF8: a store keeps bindings as text, so
// a Contact that is not UTF-8 is refused (400) rather than stored changed
// (where each refresh would add another binding).
func TestRegisterRefusesContactsNotUTF8(t *testing.T) {
	reg, err := NewRegistrar(RegistrarConfig{Auth: noAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sip.ParseMessage([]byte("REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKu\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=1\r\nTo: <sip:alice@example.test>\r\nCall-ID: u1\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:a\xff@192.0.2.1>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		t.Skipf("sipgo refuses the message itself: %v", err)
	}
	req := m.(*sip.Request)
	req.SetSource("127.0.0.1:5999")
	req.SetTransport("TLS")
	if res := reg.register(req, &auth.Identity{URI: "sip:alice@example.test"}); res.StatusCode != 400 {
		t.Fatalf("a Contact that is not UTF-8: %d, want 400", res.StatusCode)
	}
}
