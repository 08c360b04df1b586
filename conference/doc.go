// Package conference runs meetings: scheduling, the focus, the lobby,
// roles, participant types, access and presenter policies, media tokens
// and conference state (RFC 4575).
//
// The policies are those of the security model ("Participant Roles",
// "Participant Types", "Participant Admittance", "Presenter
// Capabilities"), in two functions an application can read: [Admit]
// decides direct, lobby or refused from a meeting's [AccessPolicy], the
// participant's [ParticipantType] and whether a leader or authenticated
// user has joined; [InitialRole] gives the role from the
// [PresenterPolicy].
//
// A [Focus] holds the live state of every meeting. Its Go API (Schedule,
// Join, Wait, Admit, Reject, Promote, Demote, Eject, Lock, SetAccess,
// SetPresenters, AddUser, Watch, Subscribe) is what its SIP side uses:
//
//   - INVITE to the meeting's focus URI, sip:<meeting ID>@<tenant>, joins.
//     Anonymous users authenticate with Digest, username
//     "meeting:<meeting ID>" and the conference key as password
//     ([Keys] gives the Authenticator the keys). A participant sent to
//     the lobby gets 182 Queued and waits; 200 when admitted, 603 when
//     rejected, 480 when the wait times out. The 200's Contact is the
//     focus (";isfocus", RFC 4579).
//   - INFO in that dialog carries one conference control request
//     ([ControlType], documented at [ControlRequest]): add-user returns a
//     [MediaGrant], a media token for the A/V conferencing server scoped to
//     the meeting, the participant and its role; leaders admit, reject,
//     promote, demote, eject, lock and change policies. The SIP status
//     says the outcome (403 for a role that may not).
//   - SUBSCRIBE with Event: conference to the focus URI, by a participant,
//     gets NOTIFYs with the conference state it may see (leaders see the
//     lobby; attendees the joined roster; someone in the lobby only
//     itself): the full state first, then partial documents
//     ([ConferenceInfo.Apply] merges them).
//   - BYE leaves; a closed connection leaves too ([Focus.FlowClosed]).
//
// The media server verifies media tokens with a [TokenIssuer] sharing the
// Focus's key, before it answers any offer.
package conference
