package conference

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parleyuc/parley/auth"
)

// MeetingOptions are what an organizer chooses for a new meeting.
type MeetingOptions struct {
	Subject  string
	Invitees []string
	// Access defaults to AccessCompany, Presenter to PresentersCompany.
	Access      AccessPolicy
	DialInLobby bool
	Presenter   PresenterPolicy
	Presenters  []string
	// Expires is when the meeting ends; zero makes an impromptu meeting
	// that lasts DefaultMeetingLifetime. At most MaxMeetingLifetime ahead.
	Expires time.Time
}

// Schedule creates a meeting organized by the authenticated user
// organizer. Only enabled users of a tenant, signed in as such (internal
// or remote) and licensed for meetings, may; federated and anonymous users
// may not. The meeting gets a random ID (its focus URI and link), a random
// conference key and a random numeric dial-in ID.
func (f *Focus) Schedule(ctx context.Context, organizer *auth.Identity, opts MeetingOptions) (*Meeting, error) {
	if f.cfg.JoinURL == "" {
		return nil, errors.New("conference: FocusConfig.JoinURL is required to schedule")
	}
	if organizer == nil || (organizer.Kind != auth.Internal && organizer.Kind != auth.Remote) || organizer.Tenant == "" {
		return nil, fmt.Errorf("%w: only users of the tenant organize meetings", ErrNotAllowed)
	}
	aor := canonical(organizer.URI)
	u, err := f.cfg.Directory.User(ctx, aor)
	if err != nil {
		if errors.Is(err, auth.ErrUnknownUser) {
			return nil, fmt.Errorf("%w: %s is not in the directory", ErrNotAllowed, aor)
		}
		return nil, err
	}
	// The directory grants the license, or the identity does: auth sets
	// it for a user whose provider's token grants it by claim (a group or
	// role).
	if !u.Enabled || !(u.MeetingLicense || organizer.MeetingLicense) || u.Tenant != organizer.Tenant {
		return nil, fmt.Errorf("%w: %s has no meeting license", ErrNotAllowed, aor)
	}
	now := f.cfg.Now()
	m := &Meeting{
		Organizer: aor, Tenant: organizer.Tenant, OrganizerCompany: u.Company,
		Subject: opts.Subject, Access: opts.Access, DialInLobby: opts.DialInLobby,
		Presenter: opts.Presenter, Created: now, Expires: opts.Expires,
	}
	if m.Access == 0 {
		m.Access = AccessCompany
	}
	if m.Presenter == 0 {
		m.Presenter = PresentersCompany
	}
	if _, ok := accessNames[m.Access]; !ok {
		return nil, fmt.Errorf("conference: MeetingOptions.Access: invalid %d", m.Access)
	}
	if _, ok := presenterNames[m.Presenter]; !ok {
		return nil, fmt.Errorf("conference: MeetingOptions.Presenter: invalid %d", m.Presenter)
	}
	if m.Expires.IsZero() {
		m.Expires = now.Add(DefaultMeetingLifetime)
	}
	if !m.Expires.After(now) || m.Expires.Sub(now) > MaxMeetingLifetime {
		return nil, errors.New("conference: MeetingOptions.Expires must be in the future and within a year")
	}
	for _, list := range []struct {
		in  []string
		out *[]string
	}{{opts.Invitees, &m.Invitees}, {opts.Presenters, &m.Presenters}} {
		for _, s := range list.in {
			c, err := auth.CanonicalAOR(s)
			if err != nil {
				return nil, fmt.Errorf("conference: MeetingOptions: %q: %w", s, err)
			}
			if !slices.Contains(*list.out, c) {
				*list.out = append(*list.out, c)
			}
		}
	}
	for range 5 { // collisions of 128-bit IDs do not happen; of 9-digit dial-in IDs they might
		m.ID, m.Key, m.DialInID = MeetingID(randomToken()), randomToken(), randomDialInID()
		m.JoinURL = f.cfg.JoinURL + "/meet/" + string(m.ID)
		err = f.cfg.Meetings.Create(ctx, m)
		if !errors.Is(err, ErrExists) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	f.cfg.Logger.Info("meeting scheduled", "meeting", m.ID, "organizer", aor, "access", m.Access, "presenters", m.Presenter)
	return m.Clone(), nil
}

// Meeting returns a live meeting (not expired), or an error wrapping
// ErrNotFound.
func (f *Focus) Meeting(ctx context.Context, id MeetingID) (*Meeting, error) {
	return liveMeeting(ctx, f.cfg.Meetings, f.cfg.Now, id)
}

func liveMeeting(ctx context.Context, store MeetingStore, now func() time.Time, id MeetingID) (*Meeting, error) {
	if !isMeetingID(string(id)) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	m, err := store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !now().Before(m.Expires) {
		return nil, fmt.Errorf("%w: %s has expired", ErrNotFound, id)
	}
	return m, nil
}

// ConferenceKey implements auth.ConferenceKeys: anonymous users
// authenticate with the key of a live meeting.
func (f *Focus) ConferenceKey(ctx context.Context, meetingID string) (string, error) {
	return Keys(f.cfg.Meetings, f.cfg.Now).ConferenceKey(ctx, meetingID)
}

// Keys returns the conference keys of the live meetings in store, for
// auth.Config.Conferences: the Authenticator is made before the Focus
// that uses it. now may be nil (time.Now).
func Keys(store MeetingStore, now func() time.Time) auth.ConferenceKeys {
	if now == nil {
		now = time.Now
	}
	return meetingKeys{store, now}
}

type meetingKeys struct {
	store MeetingStore
	now   func() time.Time
}

func (k meetingKeys) ConferenceKey(ctx context.Context, meetingID string) (string, error) {
	m, err := liveMeeting(ctx, k.store, k.now, MeetingID(meetingID))
	if err != nil {
		return "", fmt.Errorf("%w: %w", auth.ErrUnknownMeeting, err)
	}
	return m.Key, nil
}
