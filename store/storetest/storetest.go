// Package storetest is the conformance suite of Parley's storage
// interfaces: every implementation of conference.MeetingStore,
// presence.PolicyStore, presence.LocationStore, presence.PublicationStore,
// presence.Feed, edge.FederationStore, pki.RevocationStore and auth.DirectoryStore must pass the test of its interface, whatever engine is behind it. Call them from a test with
// a function that returns a new, empty store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/edge"
	"github.com/parleyuc/parley/pki"
	"github.com/parleyuc/parley/presence"
)

var ctx = context.Background()

func meeting(id, dialIn, organizer string, created time.Time) *conference.Meeting {
	return &conference.Meeting{ID: conference.MeetingID(id), DialInID: dialIn, Key: "key-" + id, Organizer: organizer, Tenant: "example.test",
		Subject: "about " + id, Invitees: []string{"sip:bob@example.test"}, Access: conference.AccessCompany,
		Presenter: conference.PresentersChosen, Presenters: []string{"sip:carol@example.test"},
		Created: created.UTC().Truncate(time.Second), Expires: created.Add(24 * time.Hour).UTC().Truncate(time.Second),
		JoinURL: "https://meet.example.test/meet/" + id}
}

// same reports whether two meetings hold the same data.
func same(a, b *conference.Meeting) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// MeetingStore tests a conference.MeetingStore; open returns an empty one.
func MeetingStore(t *testing.T, open func(t *testing.T) conference.MeetingStore) {
	now := time.Now()
	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		m := meeting("m1", "111111111", "sip:alice@example.test", now)
		if err := s.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "m1")
		if err != nil || !same(got, m) {
			t.Fatalf("Get = %+v, %v; want %+v", got, err, m)
		}
		if got, err := s.ByDialInID(ctx, "111111111"); err != nil || got.ID != "m1" {
			t.Fatalf("ByDialInID = %v, %v", got, err)
		}
		got.Subject = "changed by the caller"
		if again, _ := s.Get(ctx, "m1"); again.Subject != m.Subject {
			t.Fatal("a returned meeting shares memory with the store")
		}
	})
	t.Run("Missing", func(t *testing.T) {
		s := open(t)
		for name, err := range map[string]error{
			"Get":        second(s.Get(ctx, "nope")),
			"ByDialInID": second(s.ByDialInID(ctx, "999")),
			"Update":     second(s.Update(ctx, "nope", func(*conference.Meeting) error { return nil })),
			"Delete":     s.Delete(ctx, "nope"),
		} {
			if !errors.Is(err, conference.ErrNotFound) {
				t.Errorf("%s of a missing meeting: %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("CreateRefusesTakenIDs", func(t *testing.T) {
		s := open(t)
		if err := s.Create(ctx, meeting("m1", "111", "sip:alice@example.test", now)); err != nil {
			t.Fatal(err)
		}
		for name, m := range map[string]*conference.Meeting{
			"same ID":         meeting("m1", "222", "sip:bob@example.test", now),
			"same dial-in ID": meeting("m2", "111", "sip:bob@example.test", now),
		} {
			if err := s.Create(ctx, m); !errors.Is(err, conference.ErrExists) {
				t.Errorf("%s: %v, want ErrExists", name, err)
			}
		}
		if _, err := s.Get(ctx, "m2"); !errors.Is(err, conference.ErrNotFound) {
			t.Errorf("a refused Create stored something: %v", err)
		}
		if got, _ := s.Get(ctx, "m1"); got.Organizer != "sip:alice@example.test" {
			t.Errorf("a refused Create changed the first meeting: %+v", got)
		}
	})
	t.Run("Update", func(t *testing.T) {
		s := open(t)
		if err := s.Create(ctx, meeting("m1", "111", "sip:alice@example.test", now)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Update(ctx, "m1", func(m *conference.Meeting) error { m.DialInLobby = true; return nil })
		if err != nil || !got.DialInLobby || got.Revision != 1 {
			t.Fatalf("Update = %+v, %v", got, err)
		}
		if stored, _ := s.Get(ctx, "m1"); !stored.DialInLobby || stored.Revision != 1 {
			t.Fatalf("after Update, stored %+v", stored)
		}
		refused := errors.New("refused")
		if _, err := s.Update(ctx, "m1", func(m *conference.Meeting) error { m.Subject = "half"; return refused }); !errors.Is(err, refused) {
			t.Fatalf("Update whose function fails: %v", err)
		}
		if _, err := s.Update(ctx, "m1", func(m *conference.Meeting) error { m.DialInID = "222"; return nil }); err == nil {
			t.Fatal("Update changed the dial-in ID")
		}
		if stored, _ := s.Get(ctx, "m1"); stored.Subject != "about m1" || stored.DialInID != "111" || stored.Revision != 1 {
			t.Fatalf("refused Updates changed the meeting: %+v", stored)
		}
	})
	t.Run("ConcurrentUpdatesSerialize", func(t *testing.T) {
		s := open(t)
		if err := s.Create(ctx, meeting("m1", "", "sip:alice@example.test", now)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 10 {
					if _, err := s.Update(ctx, "m1", func(m *conference.Meeting) error {
						m.Invitees = append(m.Invitees, fmt.Sprintf("sip:u%d-%d@example.test", g, i))
						return nil
					}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if got, _ := s.Get(ctx, "m1"); got.Revision != 80 || len(got.Invitees) != 81 {
			t.Fatalf("after 80 concurrent updates: revision %d, %d invitees (lost updates)", got.Revision, len(got.Invitees))
		}
	})
	t.Run("DeleteAndByOrganizer", func(t *testing.T) {
		s := open(t)
		for i, id := range []string{"m3", "m1", "m2"} {
			if err := s.Create(ctx, meeting(id, "d"+id, "sip:alice@example.test", now.Add(time.Duration(3-i)*time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Create(ctx, meeting("b1", "", "sip:bob@example.test", now)); err != nil {
			t.Fatal(err)
		}
		ids := func() (out []string) {
			ms, err := s.ByOrganizer(ctx, "sip:alice@example.test")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				out = append(out, string(m.ID))
			}
			return out
		}
		if got := fmt.Sprint(ids()); got != "[m2 m1 m3]" {
			t.Fatalf("ByOrganizer = %s, want alice's meetings oldest first [m2 m1 m3]", got)
		}
		if err := s.Delete(ctx, "m1"); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids()); got != "[m2 m3]" {
			t.Fatalf("after Delete, ByOrganizer = %s", got)
		}
		if _, err := s.ByDialInID(ctx, "dm1"); !errors.Is(err, conference.ErrNotFound) {
			t.Fatalf("a deleted meeting's dial-in ID still finds it: %v", err)
		}
		if err := s.Create(ctx, meeting("m4", "dm1", "sip:alice@example.test", now)); err != nil {
			t.Fatalf("a deleted meeting's dial-in ID is not free again: %v", err)
		}
	})
}

func second[T any](_ T, err error) error { return err }

// PolicyStore tests a presence.PolicyStore; open returns an empty one.
func PolicyStore(t *testing.T, open func(t *testing.T) presence.PolicyStore) {
	s := open(t)
	const alice = "sip:alice@example.test"
	if p, err := s.Policy(ctx, alice); err != nil || p.PrivacyMode || len(p.Contacts) != 0 {
		t.Fatalf("a user with no policy: %+v, %v; want the zero policy", p, err)
	}
	want := presence.UserPolicy{PrivacyMode: true, Contacts: map[string]presence.Level{
		"sip:bob@example.test": presence.Workgroup, "sip:spam@elsewhere.test": presence.Blocked}}
	if err := s.SetPolicy(ctx, alice, want); err != nil {
		t.Fatal(err)
	}
	want.Contacts["sip:carol@example.test"] = presence.Personal // the caller's map is its own
	got, err := s.Policy(ctx, alice)
	if err != nil || !got.PrivacyMode || len(got.Contacts) != 2 || got.Contacts["sip:bob@example.test"] != presence.Workgroup ||
		got.Contacts["sip:spam@elsewhere.test"] != presence.Blocked {
		t.Fatalf("Policy = %+v, %v", got, err)
	}
	got.Contacts["sip:dave@example.test"] = presence.Colleague
	if again, _ := s.Policy(ctx, alice); len(again.Contacts) != 2 {
		t.Fatal("a returned policy shares its contacts with the store")
	}
	if err := s.SetPolicy(ctx, alice, presence.UserPolicy{}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Policy(ctx, alice); p.PrivacyMode || len(p.Contacts) != 0 {
		t.Fatalf("after resetting: %+v", p)
	}
	if p, _ := s.Policy(ctx, "sip:bob@example.test"); len(p.Contacts) != 0 {
		t.Fatalf("another user's policy: %+v", p)
	}
}

// LocationStore tests a presence.LocationStore; open returns an empty one.
func LocationStore(t *testing.T, open func(t *testing.T) presence.LocationStore) {
	const alice, bob = "sip:alice@example.test", "sip:bob@example.test"
	now := time.Now().Truncate(time.Second)
	binding := func(aor, contact, source string, life time.Duration) presence.Binding {
		return presence.Binding{AOR: aor, Contact: contact, CallID: "c-" + contact, CSeq: 1, Expires: now.Add(life),
			Transport: "TLS", Source: source, Path: []string{"<sip:edge.example.test;lr>"}}
	}
	contacts := func(s presence.LocationStore, aor string, at time.Time) string {
		bs, err := s.Bindings(ctx, aor, at)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bs {
			out = append(out, b.Contact)
		}
		slices.Sort(out) // bindings come in no particular order
		return fmt.Sprint(out)
	}
	find := func(bs []presence.Binding, contact string) presence.Binding {
		for _, b := range bs {
			if b.Contact == contact {
				return b
			}
		}
		t.Fatalf("no binding of %s in %+v", contact, bs)
		return presence.Binding{}
	}
	t.Run("PutReplaceRemove", func(t *testing.T) {
		s := open(t)
		if err := s.Update(ctx, alice, []presence.Binding{binding(alice, "sip:a1@192.0.2.1", "192.0.2.1:5061", time.Hour),
			binding(alice, "sip:a2@192.0.2.2", "192.0.2.2:5061", time.Minute)}, nil, false); err != nil {
			t.Fatal(err)
		}
		bs, err := s.Bindings(ctx, alice, now)
		if err != nil || len(bs) != 2 {
			t.Fatalf("Bindings = %+v, %v", bs, err)
		}
		if a1 := find(bs, "sip:a1@192.0.2.1"); len(a1.Path) != 1 || a1.Path[0] != "<sip:edge.example.test;lr>" || !a1.Expires.Equal(now.Add(time.Hour)) ||
			a1.Source != "192.0.2.1:5061" || a1.CallID != "c-sip:a1@192.0.2.1" {
			t.Fatalf("a1 stored as %+v", a1)
		}
		renewed := binding(alice, "sip:a1@192.0.2.1", "192.0.2.1:5061", 2*time.Hour)
		renewed.CSeq = 2
		if err := s.Update(ctx, alice, []presence.Binding{renewed}, nil, false); err != nil {
			t.Fatal(err)
		}
		if bs, _ := s.Bindings(ctx, alice, now); len(bs) != 2 || find(bs, "sip:a1@192.0.2.1").CSeq != 2 {
			t.Fatalf("a binding with the same key replaces the old: %+v", bs)
		}
		if got := contacts(s, alice, now.Add(30*time.Minute)); got != "[sip:a1@192.0.2.1]" {
			t.Fatalf("bindings past their expiry are never returned: %s", got)
		}
		if err := s.Update(ctx, bob, []presence.Binding{binding(bob, "sip:b1@192.0.2.3", "192.0.2.3:5061", time.Hour),
			binding(bob, "sip:b2@192.0.2.4", "192.0.2.4:5061", time.Hour)}, nil, false); err != nil {
			t.Fatal(err)
		}
		b1 := binding(bob, "sip:b1@192.0.2.3", "", 0)
		if err := s.Update(ctx, bob, nil, []string{b1.Key()}, false); err != nil {
			t.Fatal(err)
		}
		if got := contacts(s, bob, now); got != "[sip:b2@192.0.2.4]" {
			t.Fatalf("after removing b1: %s", got)
		}
		if err := s.Update(ctx, bob, []presence.Binding{binding(bob, "sip:b3@192.0.2.5", "192.0.2.5:5061", time.Hour)}, nil, true); err != nil {
			t.Fatal(err)
		}
		if got := contacts(s, bob, now); got != "[sip:b3@192.0.2.5]" {
			t.Fatalf("after removing all and adding b3 in one update: %s", got)
		}
		if got := contacts(s, alice, now.Add(30*time.Minute)); got != "[sip:a1@192.0.2.1]" {
			t.Fatalf("another user's updates changed alice's bindings: %s", got)
		}
	})
	t.Run("RemoveFlow", func(t *testing.T) {
		s := open(t)
		shared := "192.0.2.9:5061" // one connection (an edge's) carrying two users
		for _, b := range []presence.Binding{binding(alice, "sip:a1@x", shared, time.Hour), binding(alice, "sip:a2@y", "192.0.2.2:5061", time.Hour),
			binding(bob, "sip:b1@z", shared, time.Hour)} {
			if err := s.Update(ctx, b.AOR, []presence.Binding{b}, nil, false); err != nil {
				t.Fatal(err)
			}
		}
		// The same device address seen by another front end of a pool is
		// another flow.
		onB := binding(alice, "sip:a3@x", shared, time.Hour)
		onB.Node = "10.0.0.2:5070"
		if err := s.Update(ctx, alice, []presence.Binding{onB}, nil, false); err != nil {
			t.Fatal(err)
		}
		if bs, _ := s.Bindings(ctx, alice, now); find(bs, "sip:a3@x").Node != onB.Node {
			t.Fatalf("the node is not kept: %+v", bs)
		}
		aors, err := s.RemoveFlow(ctx, presence.Flow{Transport: "TLS", Source: shared})
		if err != nil || fmt.Sprint(aors) != "["+alice+" "+bob+"]" {
			t.Fatalf("RemoveFlow = %v, %v", aors, err)
		}
		if a, b := contacts(s, alice, now), contacts(s, bob, now); a != "[sip:a2@y sip:a3@x]" || b != "[]" {
			t.Fatalf("after the flow closed: alice %s, bob %s", a, b)
		}
		if aors, _ := s.RemoveFlow(ctx, presence.Flow{Transport: "TLS", Source: shared}); len(aors) != 0 {
			t.Fatalf("a flow removed twice: %v", aors)
		}
		if aors, _ := s.RemoveFlow(ctx, presence.Flow{Transport: "WSS", Source: "192.0.2.2:5061"}); len(aors) != 0 {
			t.Fatalf("another transport from the same address: %v", aors)
		}
		aors, err = s.RemoveFlow(ctx, onB.Flow())
		if err != nil || fmt.Sprint(aors) != "["+alice+"]" || contacts(s, alice, now) != "[sip:a2@y]" {
			t.Fatalf("RemoveFlow of the other front end's flow = %v, %v; alice has %s", aors, err, contacts(s, alice, now))
		}
	})
}

// FederationStore tests an edge.FederationStore through
// edge.OpenFederation; open returns an empty store.
func FederationStore(t *testing.T, open func(t *testing.T) edge.FederationStore) {
	s := open(t)
	if _, found, err := s.LoadFederation(ctx); found || err != nil {
		t.Fatalf("an empty store: found %v, %v", found, err)
	}
	f, err := edge.OpenFederation(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Policy(); !p.Open || len(p.Allowed)+len(p.Blocked) != 0 {
		t.Fatalf("a federation with nothing stored: %+v, want open and empty", p)
	}
	for _, err := range []error{f.Block("Spam.Test."), f.SetOpen(false), f.Allow("ally.test"), f.Allow("partner.test"), f.Forget("partner.test")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Block("not a domain"); !errors.Is(err, edge.ErrInvalidDomain) {
		t.Fatalf("blocking an invalid domain: %v", err)
	}
	again, err := edge.OpenFederation(ctx, s) // a restart, or another front end
	if err != nil {
		t.Fatal(err)
	}
	p := again.Policy()
	if p.Open || fmt.Sprint(p.Allowed) != "[ally.test]" || fmt.Sprint(p.Blocked) != "[spam.test]" {
		t.Fatalf("the stored policy read back: %+v", p)
	}
	if again.Allowed("spam.test") || !again.Allowed("ally.test") || again.Allowed("partner.test") {
		t.Fatal("the stored policy does not decide as the one that stored it")
	}
}

// PublicationStore tests a presence.PublicationStore; open returns an
// empty one.
func PublicationStore(t *testing.T, open func(t *testing.T) presence.PublicationStore) {
	const alice, bob = "sip:alice@example.test", "sip:bob@example.test"
	now := time.Now().Truncate(time.Millisecond)
	pub := func(etag, note string, at time.Time, life time.Duration) presence.Publication {
		return presence.Publication{ETag: etag, Doc: &presence.Presence{Entity: alice, Availability: presence.Busy, Note: note,
			Calendar: &presence.Calendar{OutOfOffice: "away until Monday"}}, Expires: now.Add(life), At: at}
	}
	set := func(pubs ...presence.Publication) func([]presence.Publication) ([]presence.Publication, error) {
		return func(cur []presence.Publication) ([]presence.Publication, error) { return append(cur, pubs...), nil }
	}
	etags := func(pubs []presence.Publication) string {
		var out []string
		for _, p := range pubs {
			out = append(out, p.ETag)
		}
		return fmt.Sprint(out)
	}
	t.Run("UpdateAndRead", func(t *testing.T) {
		s := open(t)
		// Stored newest first: read back oldest first.
		if err := s.Update(ctx, alice, set(pub("e2", "second", now, time.Hour), pub("e1", "first", now.Add(-time.Minute), time.Minute))); err != nil {
			t.Fatal(err)
		}
		got, err := s.Publications(ctx, alice, now)
		if err != nil || etags(got) != "[e1 e2]" {
			t.Fatalf("Publications = %s, %v; want [e1 e2]", etags(got), err)
		}
		if d := got[1].Doc; d.Note != "second" || d.Availability != presence.Busy || d.Calendar == nil || d.Calendar.OutOfOffice != "away until Monday" ||
			!got[1].Expires.Equal(now.Add(time.Hour)) || !got[1].At.Equal(now) {
			t.Fatalf("e2 read back as %+v %+v", got[1], d)
		}
		if got, _ := s.Publications(ctx, alice, now.Add(2*time.Minute)); etags(got) != "[e2]" {
			t.Fatalf("an expired publication is returned: %s", etags(got))
		}
		if got, _ := s.Publications(ctx, bob, now); len(got) != 0 {
			t.Fatalf("bob has alice's publications: %s", etags(got))
		}
		// change sees what is stored, expired ones too, and replaces it.
		var seen string
		if err := s.Update(ctx, alice, func(cur []presence.Publication) ([]presence.Publication, error) {
			slices.SortFunc(cur, func(a, b presence.Publication) int { return strings.Compare(a.ETag, b.ETag) })
			seen = etags(cur)
			return []presence.Publication{pub("e3", "third", now, time.Hour)}, nil
		}); err != nil || seen != "[e1 e2]" {
			t.Fatalf("Update saw %s (%v)", seen, err)
		}
		if got, _ := s.Publications(ctx, alice, now); etags(got) != "[e3]" {
			t.Fatalf("after a replacing update: %s", etags(got))
		}
		if err := s.Update(ctx, alice, func([]presence.Publication) ([]presence.Publication, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Publications(ctx, alice, now); len(got) != 0 {
			t.Fatalf("after removing all: %s", etags(got))
		}
	})
	t.Run("FailedChangeStoresNothing", func(t *testing.T) {
		s := open(t)
		if err := s.Update(ctx, alice, set(pub("e1", "kept", now, time.Hour))); err != nil {
			t.Fatal(err)
		}
		refused := errors.New("refused")
		err := s.Update(ctx, alice, func(cur []presence.Publication) ([]presence.Publication, error) {
			return append(cur, pub("e2", "lost", now, time.Hour)), refused
		})
		if !errors.Is(err, refused) {
			t.Fatalf("Update returned %v, want the change's error", err)
		}
		if got, _ := s.Publications(ctx, alice, now); etags(got) != "[e1]" {
			t.Fatalf("a refused change stored %s", etags(got))
		}
	})
	t.Run("ConcurrentUpdatesSerialize", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if err := s.Update(ctx, alice, set(pub(fmt.Sprint("e", i), "", now, time.Hour))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got, _ := s.Publications(ctx, alice, now); len(got) != 20 {
			t.Fatalf("%d of 20 concurrent publications kept", len(got))
		}
	})
	t.Run("Expire", func(t *testing.T) {
		s := open(t)
		if err := s.Update(ctx, alice, set(pub("a1", "", now, time.Minute), pub("a2", "", now, time.Hour))); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, bob, set(pub("b1", "", now, 2*time.Minute))); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Expire(ctx, now); err != nil || len(got) != 0 {
			t.Fatalf("Expire before anything expired = %v, %v", got, err)
		}
		if got, err := s.Expire(ctx, now.Add(90*time.Second)); err != nil || fmt.Sprint(got) != "["+alice+"]" {
			t.Fatalf("Expire = %v, %v; want alice's", got, err)
		}
		if got, _ := s.Expire(ctx, now.Add(90*time.Second)); len(got) != 0 {
			t.Fatalf("swept twice: %v", got)
		}
		if got, _ := s.Publications(ctx, alice, now); etags(got) != "[a2]" {
			t.Fatalf("after the sweep alice has %s", etags(got))
		}
		// Sweepers racing (the front ends of a pool): each change once.
		var mu sync.Mutex
		var reported []string
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				got, err := s.Expire(ctx, now.Add(3*time.Hour))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				reported = append(reported, got...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(reported)
		if fmt.Sprint(reported) != "["+alice+" "+bob+"]" {
			t.Fatalf("four sweepers reported %v, want alice and bob once each", reported)
		}
		if got, _ := s.Publications(ctx, alice, now); len(got) != 0 {
			t.Fatalf("after the sweep alice has %s", etags(got))
		}
	})
}

// Feed tests a presence.Feed; open returns the feed of one more front end
// of the same pool.
func Feed(t *testing.T, open func(t *testing.T) presence.Feed) {
	a, b := open(t), open(t)
	type heard struct{ who, aor string }
	got := make(chan heard, 16)
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for who, f := range map[string]presence.Feed{"a": a, "b": b} {
		wg.Go(func() {
			if err := f.Listen(lctx, func(aor string) { got <- heard{who, aor} }); err != nil {
				t.Error(err)
			}
		})
	}
	// Both report "" when they start listening.
	for range 2 {
		select {
		case h := <-got:
			if h.aor != "" {
				t.Fatalf("%s heard %q before anything was announced", h.who, h.aor)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a listener did not start")
		}
	}
	if err := a.Announce(ctx, "sip:alice@example.test"); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != (heard{"b", "sip:alice@example.test"}) {
			t.Fatalf("heard %+v, want b hearing alice (a does not hear itself)", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other front end did not hear the announcement")
	}
	if err := b.Announce(ctx, "sip:bob@example.test"); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != (heard{"a", "sip:bob@example.test"}) {
			t.Fatalf("heard %+v, want a hearing bob", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other front end did not hear the announcement")
	}
	cancel()
	wg.Wait()
	select {
	case h := <-got:
		t.Fatalf("heard %+v more", h)
	default:
	}
}

// RevocationStore tests a pki.RevocationStore; open returns an empty one.
func RevocationStore(t *testing.T, open func(t *testing.T) pki.RevocationStore) {
	s := open(t)
	const issuer, other = "issuer-a", "issuer-b"
	if l, err := s.RevocationList(ctx, issuer); err != nil || len(l.Revoked) != 0 || l.CRL != nil {
		t.Fatalf("an empty store: %+v, %v", l, err)
	}
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	wide := new(big.Int).Lsh(bigOne, 158) // a 20-octet serial survives the round trip
	crl := &pki.PublishedCRL{DER: []byte{0x30, 0x03, 0x02, 0x01, 0x05}, Number: bigInt(5), ThisUpdate: at, NextUpdate: at.Add(time.Hour), Covers: 2}
	err := s.UpdateRevocationList(ctx, issuer, func(l *pki.RevocationList) error {
		l.Revoked = append(l.Revoked,
			pki.Revocation{Serial: bigInt(0x2a), RevokedAt: at, Reason: pki.ReasonKeyCompromise},
			pki.Revocation{Serial: wide, RevokedAt: at.Add(time.Second), Reason: pki.ReasonSuperseded})
		l.CRL = crl
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.RevocationList(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Revoked) != 2 || l.Revoked[0].Serial.Int64() != 0x2a || l.Revoked[1].Serial.Cmp(wide) != 0 ||
		!l.Revoked[0].RevokedAt.Equal(at) || l.Revoked[1].Reason != pki.ReasonSuperseded {
		t.Fatalf("revocations read back: %+v", l.Revoked)
	}
	if c := l.CRL; c == nil || string(c.DER) != string(crl.DER) || c.Number.Int64() != 5 || !c.ThisUpdate.Equal(at) ||
		!c.NextUpdate.Equal(crl.NextUpdate) || c.Covers != 2 {
		t.Fatalf("CRL read back: %+v", l.CRL)
	}
	if o, err := s.RevocationList(ctx, other); err != nil || len(o.Revoked) != 0 || o.CRL != nil {
		t.Fatalf("another issuer sees %+v, %v", o, err)
	}

	// A refused change stores nothing, and its error comes back as it is.
	refused := errors.New("refused")
	err = s.UpdateRevocationList(ctx, issuer, func(l *pki.RevocationList) error {
		l.Revoked = l.Revoked[:0]
		l.CRL = nil
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("a refused change: %v, want its own error", err)
	}
	if l, _ := s.RevocationList(ctx, issuer); len(l.Revoked) != 2 || l.CRL == nil {
		t.Fatalf("a refused change was stored: %+v", l)
	}

	// Changing what a read returned changes nothing stored.
	l.Revoked[0].Serial.SetInt64(99)
	l.CRL.DER[0] = 0
	if again, _ := s.RevocationList(ctx, issuer); again.Revoked[0].Serial.Int64() != 0x2a || again.CRL.DER[0] != 0x30 {
		t.Fatal("the store shares its list with a caller")
	}

	// Concurrent revocations, as from several front ends: none is lost.
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.UpdateRevocationList(ctx, other, func(l *pki.RevocationList) error {
				l.Revoked = append(l.Revoked, pki.Revocation{Serial: bigInt(int64(1000 + i)), RevokedAt: at})
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	o, err := s.RevocationList(ctx, other)
	if err != nil || len(o.Revoked) != n {
		t.Fatalf("%d concurrent revocations stored %d: %v", n, len(o.Revoked), err)
	}
	seen := map[int64]bool{}
	for _, r := range o.Revoked {
		seen[r.Serial.Int64()] = true
	}
	if len(seen) != n {
		t.Fatalf("concurrent revocations stored %d distinct serials of %d", len(seen), n)
	}
}

var bigOne = bigInt(1)

func bigInt(n int64) *big.Int { return new(big.Int).SetInt64(n) }

// PartnerStore tests an edge.PartnerStore; open returns an empty one.
func PartnerStore(t *testing.T, open func(t *testing.T) edge.PartnerStore) {
	s := open(t)
	if list, err := s.LoadPartners(ctx); err != nil || len(list) != 0 {
		t.Fatalf("an empty store: %v, %v", list, err)
	}
	zeta := edge.FederationPartner{Domain: "Zeta.test", Edge: "edge.zeta.test:5061", CA: "-----BEGIN CERTIFICATE-----\n...\n"}
	alpha := edge.FederationPartner{Domain: "alpha.test"}
	for _, p := range []edge.FederationPartner{zeta, alpha, {Domain: "alpha.test", Edge: "sip.alpha.test:5061"}} {
		if err := s.SavePartner(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.LoadPartners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []edge.FederationPartner{{Domain: "alpha.test", Edge: "sip.alpha.test:5061"}, {Domain: "zeta.test", Edge: zeta.Edge, CA: zeta.CA}}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("stored partners read back: %+v, want %+v (sorted, domains lower-case, the second alpha.test replacing the first)", list, want)
	}
	if found, err := s.RemovePartner(ctx, "ZETA.test"); !found || err != nil {
		t.Fatalf("removing zeta.test: %v, %v", found, err)
	}
	if found, err := s.RemovePartner(ctx, "zeta.test"); found || err != nil {
		t.Fatalf("removing zeta.test again: %v, %v, want not found", found, err)
	}
	if list, err := s.LoadPartners(ctx); err != nil || len(list) != 1 || list[0].Domain != "alpha.test" {
		t.Fatalf("after the removal: %+v, %v", list, err)
	}
}
