package conference

import (
	"fmt"
	"time"
)

// AddUser admits participant pid to the A/V conference: it returns a
// media token scoped to the meeting, the participant and its role, and the
// media server's address. A participant still in the lobby gets a token
// with the role [LobbyRole], with which the media server lets it hear the
// lobby's music and nothing of the meeting until it is admitted. binding,
// optional, is the fingerprint of the participant's DTLS certificate the
// token will be bound to.
func (f *Focus) AddUser(id MeetingID, pid ParticipantID, binding string) (*MediaGrant, error) {
	c, err := f.existing(id)
	if err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	p := c.parts[pid]
	if p == nil {
		return nil, ErrNoParticipant
	}
	if !f.cfg.Now().Before(c.meeting.Expires) {
		return nil, fmt.Errorf("%w: the meeting has ended", ErrNotFound)
	}
	role := p.Role.String()
	if p.State == InLobby {
		role = LobbyRole
	}
	tok := f.cfg.Tokens.Issue(MediaClaims{Meeting: id, Participant: pid, Subject: p.URI, Role: role, Binding: binding}, f.cfg.TokenTTL)
	return &MediaGrant{Token: tok, Server: f.cfg.MediaServer, Expires: f.cfg.Now().Add(f.cfg.TokenTTL).UTC().Truncate(time.Second)}, nil
}
