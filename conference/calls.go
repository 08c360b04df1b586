package conference

import (
	"context"
	"time"
)

// SIP participants (desktop clients, phones, and callers a PSTN gateway
// delivers) take their media from the A/V conferencing server as one
// mixed audio stream, negotiated in the INVITE's SDP with SDES-SRTP keys
// that cross only the TLS signaling connection. The focus drives the
// call: it answers the INVITE with the media server's SDP answer, and for
// a dial-in access number runs the interactive voice response (IVR) that
// asks for the conference ID and a recorded name. The media server
// provides the audio primitives through [Media] and [Call].

// SetMedia makes m the A/V conferencing server that SIP participants take
// their audio from: an INVITE to a meeting with an SDP offer gets the mix
// of the meeting in its answer, and the dial-in numbers answer. Without
// it, such INVITEs are refused (488, or 503 for dial-in numbers). The
// media server needs the Focus to be made, which is why this is not a
// FocusConfig field: call it before serving SIP.
func (f *Focus) SetMedia(m Media) { f.media.Store(&m) }

// mediaServer returns the media server, or nil.
func (f *Focus) mediaServer() Media {
	if m := f.media.Load(); m != nil {
		return *m
	}
	return nil
}

// Media is the A/V conferencing server's side of SIP participants' calls;
// *media.Bridge implements it.
type Media interface {
	// AnswerCall takes a SIP participant's SDP offer and returns its call,
	// whose Answer is the SDP answer. plain allows RTP without SRTP, for a
	// trusted gateway configured for it; otherwise an offer without an
	// acceptable SRTP key is refused.
	AnswerCall(offer string, plain bool) (Call, error)
}

// Call is one SIP participant's media on the A/V conferencing server.
// Until it joins a meeting it plays prompts, collects DTMF digits and
// records; once joined it hears the meeting's mix (everyone but itself)
// and the meeting hears it.
type Call interface {
	// Answer is the SDP answer to the participant's offer.
	Answer() string
	// Play plays a prompt to the caller and returns when it has been
	// played, when the caller presses a key (the key stays readable from
	// Digits), or when ctx is done.
	Play(ctx context.Context, p Prompt) error
	// Digits carries the keys the caller presses: RFC 4733 telephone
	// events from its media, and those given to Press.
	Digits() <-chan byte
	// Press adds a key the caller pressed, as signaled outside the media
	// (a SIP INFO).
	Press(digit byte)
	// Record records the caller for at most max, ending early when the
	// caller presses # or ctx is done, and returns a WAV file.
	Record(ctx context.Context, max time.Duration) ([]byte, error)
	// Join hands the call to meeting's media with the media token the
	// focus granted participant.
	Join(ctx context.Context, meeting MeetingID, participant ParticipantID, token string) error
	// Done is closed when the call's media has ended (closed, its meeting
	// ended, or nothing heard from the caller for too long).
	Done() <-chan struct{}
	// Close ends the call's media.
	Close() error
}

// Prompt names a recorded message the IVR plays to dial-in callers.
type Prompt string

// The IVR's prompts.
const (
	PromptConferenceID Prompt = "conference-id" // welcome; enter the conference ID, then #
	PromptNotFound     Prompt = "not-found"     // no meeting with that ID; try again
	PromptRecordName   Prompt = "record-name"   // after the tone, say your name, then #
	PromptLobby        Prompt = "lobby"         // please wait: someone will let you in
	PromptJoining      Prompt = "joining"       // you are joining the meeting now
	PromptRefused      Prompt = "refused"       // you cannot join this meeting; goodbye
	PromptBeep         Prompt = "beep"          // a short tone before recording
)
