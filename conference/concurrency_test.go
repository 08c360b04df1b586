package conference

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentJoinsWhileLeadersDecide: 200 people join while three
// leaders admit and reject from the lobby at the same time. Nobody is
// admitted twice, nobody is lost: every joiner ends admitted or rejected,
// and the counts agree with the leaders' successes and the roster.
func TestConcurrentJoinsWhileLeadersDecide(t *testing.T) {
	const joiners = 200
	e := newFocusEnv(t)
	m := e.schedule(MeetingOptions{Access: AccessOrganizer, Presenter: PresentersOrganizer})
	org := e.join(m, internal("alice"))
	// Two presenters from the lobby: admitted and promoted by alice.
	var leaders = []string{string(org.ID)}
	for _, u := range []string{"bob", "carol"} {
		p := e.join(m, internal(u))
		if err := e.focus.Lobby().Admit(context.Background(), m.ID, org.ID, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.focus.Promote(context.Background(), m.ID, org.ID, p.ID); err != nil {
			t.Fatal(err)
		}
		leaders = append(leaders, string(p.ID))
	}

	var joinedEvents, rejectedEvents atomic.Int64
	stop, _ := e.focus.Watch(context.Background(), m.ID, func(ev Event) {
		switch ev.Kind {
		case EventJoined:
			joinedEvents.Add(1)
		case EventRejected:
			rejectedEvents.Add(1)
		}
	})
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waiting := make(chan *Participant, joiners)
	outcomes := make(chan error, joiners)
	var wg sync.WaitGroup
	for i := range joiners {
		wg.Go(func() {
			id := anonymous(m.ID, "guest")
			if i%2 == 0 {
				id = federated("p" + string(rune('a'+i%26)))
			}
			p, err := e.focus.Join(ctx, m.ID, JoinRequest{Identity: id})
			if err != nil {
				outcomes <- err
				return
			}
			waiting <- p
			outcomes <- e.focus.Lobby().Wait(ctx, p)
		})
	}
	var admits, rejects atomic.Int64
	var lwg sync.WaitGroup
	decide := make(chan *Participant, joiners)
	go func() {
		for range joiners {
			p := <-waiting
			decide <- p
			decide <- p // every participant is decided on twice, by two leaders
		}
		close(decide)
	}()
	for _, leader := range leaders {
		lwg.Go(func() {
			for p := range decide {
				var err error
				if rand.IntN(2) == 0 {
					if err = e.focus.Lobby().Admit(context.Background(), m.ID, ParticipantID(leader), p.ID); err == nil {
						admits.Add(1)
					}
				} else if err = e.focus.Lobby().Reject(context.Background(), m.ID, ParticipantID(leader), p.ID); err == nil {
					rejects.Add(1)
				}
				if err != nil && !errors.Is(err, ErrWrongState) && !errors.Is(err, ErrNoParticipant) {
					t.Errorf("leader: %v", err)
				}
			}
		})
	}
	wg.Wait()
	lwg.Wait()
	close(outcomes)
	var admitted, rejected int64
	for err := range outcomes {
		switch {
		case err == nil:
			admitted++
		case errors.Is(err, ErrRejected):
			rejected++
		default:
			t.Errorf("joiner: %v", err)
		}
	}
	if admitted+rejected != joiners || admitted != admits.Load() || rejected != rejects.Load() {
		t.Fatalf("%d admitted, %d rejected; leaders admitted %d, rejected %d", admitted, rejected, admits.Load(), rejects.Load())
	}
	if joinedEvents.Load() != admitted || rejectedEvents.Load() != rejected {
		t.Fatalf("events: %d joined, %d rejected", joinedEvents.Load(), rejectedEvents.Load())
	}
	in := 0
	for _, p := range e.focus.Participants(m.ID) {
		if p.State != Joined {
			t.Errorf("%s still %s", p.ID, p.State)
		}
		in++
	}
	if in != int(admitted)+3 {
		t.Fatalf("roster has %d, want %d admitted + 3 leaders", in, admitted)
	}
	t.Logf("%d admitted, %d rejected", admitted, rejected)
}
