package presence

// Notification: how a change (a publication, a sign-in, a policy) reaches
// the watchers. A change is read from the stores once (a snapshot), each
// watcher's view is cut from it by the VisibilityRule, and one sender per
// subscription sends the NOTIFYs in order.

import (
	"context"
	"crypto/sha256"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/parleyuc/parley/auth"
)

// Changed sends every watcher of aor a fresh view, and announces the
// change on the Feed to the pool's other front ends. The PresenceServer
// calls it itself when aor publishes, signs in or out, or when aor's
// visibility rule changes; call it when aor's directory data changes.
func (s *PresenceServer) Changed(aor string) {
	aor = canonicalAOR(aor)
	s.changedHere(aor)
	if s.cfg.Feed == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, storeDeadline)
	defer cancel()
	if err := s.cfg.Feed.Announce(ctx, aor); err != nil && s.ctx.Err() == nil {
		s.cfg.Logger.Error("presence feed: change not announced", "user", aor, "err", err)
	}
}

// registrationChanged follows the Registrar: a user signed a device in or
// out. When a device signed out, or its connection closed, what it
// published over that connection goes too (a device that crashed or lost
// its network publishes nothing more, and its "busy" must not outlive
// it). Watchers get a fresh view.
func (s *PresenceServer) registrationChanged(c RegistrationChange) {
	aor := canonicalAOR(c.AOR)
	gone := c.Closed
	if gone == nil {
		gone = c.SignedOut
	}
	if gone != nil {
		flow := (&Flow{Transport: strings.ToUpper(gone.Transport), Source: gone.Source}).String()
		ctx, cancel := context.WithTimeout(s.ctx, storeDeadline)
		err := s.cfg.Publications.Update(ctx, aor, func(pubs []Publication) ([]Publication, error) {
			return slices.DeleteFunc(slices.Clone(pubs), func(p Publication) bool { return p.Flow == flow }), nil
		})
		cancel()
		if err != nil {
			s.cfg.Logger.Error("publication store: a signed-out device's publications not removed", "user", aor, "err", err)
		}
	}
	s.Changed(aor)
}

// changedHere sends this server's watchers of aor a fresh view; of every
// presentity if aor is "".
func (s *PresenceServer) changedHere(aor string) {
	s.mu.Lock()
	var presentities []string
	if aor == "" {
		presentities = slices.Collect(maps.Keys(s.byPres))
	} else if aor = canonicalAOR(aor); len(s.byPres[aor]) > 0 {
		presentities = []string{aor}
	}
	s.mu.Unlock()
	for _, p := range presentities {
		ctx, cancel := context.WithTimeout(s.ctx, storeDeadline)
		_, err := s.read(ctx, p)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.cfg.Logger.Error("presence state unavailable", "user", p, "err", err)
		}
		s.mu.Lock()
		subs := slices.Collect(maps.Values(s.byPres[p]))
		s.mu.Unlock()
		for _, sub := range subs {
			s.kick(sub)
		}
	}
}

// read reads presentity's state from the stores and keeps it for the
// NOTIFYs of the change, unless a reading begun later is kept already. A
// failed reading drops the one kept, so that watchers are not sent state
// older than the change.
func (s *PresenceServer) read(ctx context.Context, presentity string) (*snapshot, error) {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	full, err := s.fullView(ctx, presentity)
	var policy *UserPolicy
	if pp, ok := s.cfg.Policy.(*PresencePolicy); ok && err == nil {
		// Exactly our rule (not a wrapper, whose Level may differ): its
		// settings are read once for every watcher.
		var p UserPolicy
		p, err = pp.Policy(ctx, presentity)
		policy = &p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snaps[presentity]
	if err != nil {
		if cur != nil && cur.seq < seq {
			delete(s.snaps, presentity)
		}
		return nil, err
	}
	snap := &snapshot{seq: seq, full: full, policy: policy}
	if (cur == nil || cur.seq < seq) && len(s.byPres[presentity]) > 0 {
		s.snaps[presentity] = snap
	}
	return snap, nil
}

// kick makes sure sub gets a NOTIFY with the current state: it starts a
// sender unless one is already running, which then sends once more. So a
// burst of changes costs a watcher at most two NOTIFYs, always in order.
func (s *PresenceServer) kick(sub *subscription) {
	s.mu.Lock()
	if s.ctx.Err() != nil || sub.terminated == "sent" || s.subs[sub.id] != sub {
		s.mu.Unlock()
		return // closed, or the subscription has ended
	}
	if sub.sending {
		sub.dirty = true
		s.mu.Unlock()
		return
	}
	sub.sending = true
	s.senders++
	s.wg.Add(1) // under mu: Close cancels under mu before it waits
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for {
			s.notify(sub)
			s.mu.Lock()
			if !sub.dirty || sub.terminated == "sent" || s.subs[sub.id] != sub {
				sub.sending = false
				s.senders--
				s.mu.Unlock()
				return
			}
			sub.dirty = false
			s.mu.Unlock()
		}
	}()
}

// view composes what sub's watcher may see of its presentity: from the
// reading of the latest change, or a fresh one for a new or refreshed
// subscription. It fails if the stores cannot be read.
func (s *PresenceServer) view(ctx context.Context, sub *subscription) (*Presence, error) {
	s.mu.Lock()
	snap := s.snaps[sub.presentity]
	fresh := sub.mustSend
	s.mu.Unlock()
	if snap == nil || fresh {
		var err error
		if snap, err = s.read(ctx, sub.presentity); err != nil {
			return nil, err
		}
	}
	var level Level
	if snap.policy != nil {
		level = snap.policy.Level(sub.presentity, sub.watcher)
	} else {
		var err error
		if level, err = s.cfg.Policy.Level(ctx, sub.presentity, sub.watcher); err != nil {
			return nil, err
		}
	}
	return viewFor(s.cfg.Policy, snap.full, level), nil
}

// fullView aggregates a presentity's publications with its directory data:
// the most demanding state of any device wins (do not disturb, busy,
// available, away); the latest note and calendar win; with no publication
// a signed-in user is Available.
func (s *PresenceServer) fullView(ctx context.Context, aor string) (*Presence, error) {
	p := &Presence{Entity: aor, Availability: Offline}
	live, err := s.cfg.Publications.Publications(ctx, aor, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		bs, err := s.cfg.Registrar.Lookup(ctx, aor)
		if err != nil {
			return nil, err
		}
		if len(bs) > 0 {
			p.Availability = Available
		}
	}
	rank := func(a Availability) int { return slices.Index(availabilityOrder, a) }
	for i, pub := range live {
		if i == 0 || rank(pub.Doc.Availability) < rank(p.Availability) {
			p.Availability = pub.Doc.Availability
		}
		if pub.Doc.Note != "" {
			p.Note = pub.Doc.Note
		}
		if pub.Doc.Calendar != nil {
			p.Calendar = pub.Doc.Calendar
		}
	}
	if u, err := s.cfg.Directory.User(ctx, aor); err == nil && u != nil {
		p.Personal = &PersonalData{Name: u.DisplayName, Title: u.Title, Company: u.Company, Email: u.Email, TimeZone: u.TimeZone}
		if u.Phones != (auth.Phones{}) {
			p.Phones = &PhoneNumbers{Work: u.Phones.Work, Mobile: u.Phones.Mobile, Home: u.Phones.Home}
		}
	}
	return p, nil
}

// notify sends sub one NOTIFY with its current view, in its dialog, over
// the watcher's flow. A watcher that answers 481, or cannot be reached,
// loses its subscription.
func (s *PresenceServer) notify(sub *subscription) {
	select {
	case s.sends <- struct{}{}:
		defer func() { <-s.sends }()
	case <-s.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, notifyTimeout)
	defer cancel()
	var body []byte
	view, err := s.view(ctx, sub)
	if err == nil {
		body = view.MarshalPIDF()
	}
	sum := sha256.Sum256(body)

	now := s.cfg.Now()
	s.mu.Lock()
	final := sub.terminated != "" || !now.Before(sub.expires)
	if err != nil && !final {
		// The watcher keeps the last view it was sent; the pool's Feed
		// has every view checked again once the store is back.
		s.mu.Unlock()
		s.cfg.Logger.Error("presence view unavailable; NOTIFY not sent", "user", sub.presentity, "watcher", sub.watcher.URI, "err", err)
		return
	}
	if !final && !sub.mustSend && sum == sub.lastBody {
		// Nothing this watcher may see has changed: sending anyway would
		// tell it when the presentity is active.
		s.mu.Unlock()
		return
	}
	if sub.terminated == "rejected" {
		body = nil // the watcher may no longer see it (EndSubscriptions)
	}
	sub.mustSend, sub.lastBody = false, sum
	transport, source := sub.transport, sub.source
	sub.cseq++
	cseq := sub.cseq
	state := "active;expires=" + strconv.Itoa(max(0, int(sub.expires.Sub(now)/time.Second)))
	if final {
		switch sub.terminated {
		case "terminated": // unsubscribed, or a fetch
			state = "terminated"
		case "deactivated": // Shutdown
			state = "terminated;reason=deactivated"
		case "rejected": // EndSubscriptions
			state = "terminated;reason=rejected"
		default:
			state = "terminated;reason=timeout"
		}
		sub.terminated = "sent"
		s.dropLocked(sub)
	}
	s.mu.Unlock()

	req := sip.NewRequest(sip.NOTIFY, sub.target)
	var presURI, watcherURI sip.Uri
	_ = sip.ParseUri(sub.presentity, &presURI)
	_ = sip.ParseUri(sub.watcher.URI, &watcherURI)
	fromParams, toParams := sip.NewParams(), sip.NewParams()
	fromParams.Add("tag", sub.localTag)
	toParams.Add("tag", sub.remoteTag)
	callID := sip.CallIDHeader(sub.callID)
	req.AppendHeader(&sip.FromHeader{Address: presURI, Params: fromParams})
	req.AppendHeader(&sip.ToHeader{Address: watcherURI, Params: toParams})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, r := range sub.routeSet {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(sip.NewHeader("Contact", "<"+s.contact(sub)+">"))
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if body != nil { // a final NOTIFY may go without: the store failed, or the watcher lost the right
		req.AppendHeader(sip.NewHeader("Content-Type", pidfType))
		req.SetBody(body)
	} else {
		// sipgo writes no Content-Length for a request without a body,
		// and over a stream the receiver cannot tell where it ends.
		req.SetBody([]byte{})
	}
	req.SetTransport(transport)
	req.SetDestination(source)
	if !flowAlive(s.cfg.Connections, transport, source) {
		s.dropFor(sub, "the watcher's connection is gone")
		return
	}

	tx, err := s.cfg.Client.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		s.cfg.Logger.Info("NOTIFY not sent; subscription dropped", "user", sub.presentity, "watcher", sub.watcher.URI, "err", err)
		s.drop(sub)
		return
	}
	defer tx.Terminate()
	select {
	case res := <-tx.Responses():
		for res != nil && res.StatusCode < 200 {
			select {
			case res = <-tx.Responses():
			case <-tx.Done():
				res = nil
			}
		}
		if res != nil && (res.StatusCode == 481 || res.StatusCode >= 400 && res.StatusCode != 408) {
			s.dropFor(sub, "the watcher answered "+strconv.Itoa(res.StatusCode))
		}
	case <-tx.Done():
		s.dropFor(sub, "the NOTIFY transaction ended unanswered")
	case <-ctx.Done():
		// A watcher that does not answer loses its subscription, so it
		// cannot hold NOTIFY senders hostage.
		s.dropFor(sub, "the watcher did not answer")
	}
}

// dropFor ends sub after a failed NOTIFY, and logs why.
func (s *PresenceServer) dropFor(sub *subscription, why string) {
	s.cfg.Logger.Info("subscription dropped", "user", sub.presentity, "watcher", sub.watcher.URI, "why", why)
	s.drop(sub)
}

func (s *PresenceServer) drop(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked(sub)
}

func (s *PresenceServer) dropLocked(sub *subscription) {
	if s.subs[sub.id] != sub {
		return
	}
	delete(s.subs, sub.id)
	w := canonicalAOR(sub.watcher.URI)
	if s.byWatcher[w]--; s.byWatcher[w] <= 0 {
		delete(s.byWatcher, w)
	}
	if m := s.byPres[sub.presentity]; m != nil {
		delete(m, sub.id)
		if len(m) == 0 {
			delete(s.byPres, sub.presentity)
			delete(s.snaps, sub.presentity)
		}
	}
}

// expireLoop ends expired subscriptions (with a final NOTIFY) and removes
// expired publications (their watchers are told, in the whole pool), once
// a second.
func (s *PresenceServer) expireLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		var ended []*subscription
		s.mu.Lock()
		for _, sub := range s.subs {
			if !now.Before(sub.expires) && sub.terminated == "" {
				ended = append(ended, sub)
			}
		}
		s.mu.Unlock()
		for _, sub := range ended {
			s.kick(sub)
		}
		ctx, cancel := context.WithTimeout(s.ctx, storeDeadline)
		changed, err := s.cfg.Publications.Expire(ctx, now)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.cfg.Logger.Error("publication store: expiry failed", "err", err)
		}
		for _, aor := range changed {
			s.Changed(aor)
		}
	}
}
