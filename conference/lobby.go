package conference

import (
	"context"
	"fmt"
)

// decide ends p's lobby wait with outcome (nil: admitted), once.
func (p *participant) decide(outcome error) {
	if p.decided == nil || p.finished {
		return
	}
	p.finished = true
	p.timer.Stop()
	p.outcome = outcome
	close(p.decided)
}

// Wait blocks until p, as Join returned it, is out of the lobby: nil once
// admitted (or if it never waited), else ErrRejected, ErrLobbyTimeout,
// ErrLeft, ErrClosed or ctx's error.
func (f *Focus) Wait(ctx context.Context, p *Participant) error {
	if p.w == nil || p.w.decided == nil {
		return nil
	}
	select {
	case <-p.w.decided:
		return p.w.outcome // written before decided was closed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Focus) lobbyTimeout(id, pid string) {
	c, err := f.existing(id)
	if err != nil {
		return
	}
	if p := c.parts[pid]; p != nil && p.State == InLobby {
		f.removeLocked(c, p, EventLobbyTimeout, "", ErrLobbyTimeout)
	}
	c.mu.Unlock()
	f.release(c)
}

// Admit lets participant pid in from the lobby, on the request of the
// joined leader actor.
func (f *Focus) Admit(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters admit from the lobby", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != InLobby {
			return fmt.Errorf("%w: %s is not in the lobby", ErrWrongState, pid)
		}
		f.enterLocked(c, p, a.ID)
		return nil
	})
}

// Reject turns participant pid away from the lobby, on the request of the
// joined leader actor.
func (f *Focus) Reject(id, actor, pid string) error {
	return f.control(id, actor, func(c *conf, a *participant) error {
		if !a.Role.Leader() {
			return fmt.Errorf("%w: only presenters reject from the lobby", ErrForbidden)
		}
		p, err := c.target(pid)
		if err != nil {
			return err
		}
		if p.State != InLobby {
			return fmt.Errorf("%w: %s is not in the lobby", ErrWrongState, pid)
		}
		f.removeLocked(c, p, EventRejected, a.ID, ErrRejected)
		return nil
	})
}
