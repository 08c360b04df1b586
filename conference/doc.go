// Package conference runs meetings: scheduling, the focus, the lobby,
// roles, participant types, access and presenter policies, media tokens
// and conference state (RFC 4575).
//
// The policies are those of the security model ("Participant Roles",
// "Participant Types", "Participant Admittance", "Presenter
// Capabilities"). Who enters is decided by a [Lobby] through its
// [AdmissionRule]: the default, [AccessRule], decides direct, lobby or
// refused from a meeting's [AccessPolicy] and the participant's
// [ParticipantType], and the Lobby's invariants hold around any rule (a
// conference key opens one meeting, a locked meeting holds everyone but
// the organizer, anonymous users wait until a leader or an authenticated
// user has joined). An application plugs its own rule in (partners skip
// the lobby, a domain is refused) with [NewLobby] and FocusConfig.Lobby.
// [InitialRole] gives the role from the [PresenterPolicy].
//
// Composing: [NewFocus] takes a [FocusConfig] (a [MeetingStore], the
// auth.Directory for licenses and companies, a [TokenIssuer] shared with
// the media server; for SIP an [Authenticator], a sipgo client and the
// listeners); a Focus whose Authenticator tracks connections
// (auth.Authenticator) takes participants whose connection closed out of
// their meetings by itself. [Focus.Dispatch] mounts it on the
// application's sipgo server; [Focus.SetMedia] gives it the A/V server;
// [Focus.Shutdown] drains it.
//
// A [Focus] holds the live state of every meeting. Its Go API (Schedule,
// Join, Leave, End; the Lobby's Admit, Reject, Wait and Waiting; the
// leaders' Promote, Demote, Eject, Lock, MuteAll, SetAccess,
// SetPresenters; SetHand, a participant's raised hand; AddUser, Watch,
// Subscribe), with meetings and
// participants named by [MeetingID] and [ParticipantID], is what its SIP
// side uses:
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
//   - MESSAGE in that dialog (text/plain) is the participant's chat to the
//     meeting ([Focus.Chat]); the others' come to it the same way, as
//     "Name: text". Only participants in the meeting (not in the lobby)
//     chat; 400 for an empty or oversized text, 503 when too fast.
//   - BYE leaves; a closed connection leaves too ([Focus.FlowClosed],
//     registered with the Authenticator by NewFocus).
//   - An INVITE with an SDP offer (RTP/SAVP with SDES keys, RFC 4568) is a
//     SIP participant taking its audio from the meeting: once the
//     participant is in, the A/V server ([Focus.SetMedia], a [Media])
//     answers the offer and the 200 carries the answer; the participant
//     hears everyone but itself. Key presses come as RFC 4733 events in
//     the media, or as INFO with application/dtmf-relay or
//     application/dtmf.
//   - An INVITE from a trusted PSTN gateway (FocusConfig.Gateways, proven
//     by its client certificate) to a dial-in number
//     (FocusConfig.DialInNumbers) reaches the IVR: it answers at once,
//     asks for the conference ID (three tries), asks an anonymous caller
//     to record its name ([Focus.RecordedName] lets leaders hear it), and
//     puts the caller in the meeting or its lobby as the meeting's
//     dial-in setting says, playing a prompt while it waits. Plain RTP is
//     taken only from gateways in FocusConfig.PlainRTPGateways.
//
// In a pool of front ends sharing a store, FocusConfig.Leases makes each
// live meeting hosted by exactly one of them: the first participant's
// front end acquires the meeting's [Lease] ([HostLeases]), renews it
// every third of its TTL while the meeting lives and releases it when it
// ends; a join through another front end fails with a [*HostedError]
// (ErrHostedElsewhere) naming the holder. With FocusConfig.Forwarder (a
// [HostForwarder], such as presence.Router) the SIP requests for such a
// meeting are passed on to the host (INVITE, SUBSCRIBE, a gateway's
// dial-in; the IVR transfers its callers there with REFER), and the Focus
// follows the joins it passed on: when the host's lease lapses or changes
// hands, their participants get a BYE with Reason cause 503
// ([ReasonHostGone]) and join again. Without it an INVITE is answered 302
// to the host (FocusConfig.HostAddress) or 503. A lease's Token is a
// fencing token, larger at every grant: the Focus writes the meeting's
// settings with [FencedMeetingStore.UpdateFenced], which the store refuses
// (ErrFenced) once a newer lease was granted, and a Focus whose renewal
// fails ends the meeting locally, so two front ends never both host it.
// The host also keeps the meeting's live state in the store, fenced the
// same way ([LiveState]: the lock, the audience's mute, the users admitted
// from the lobby and the roles granted), so when it dies the front end
// that hosts the meeting next rebuilds it: admitted users and presenters
// rejoin as they were (guests, who have no lasting identity, wait again).
// A join the store cannot serve is [ErrUnavailable], SIP 503 with
// Retry-After. An End through a front end that does not host the meeting
// deletes it; the host ends it live with [Focus.EndDeleted].
//
// The media server verifies media tokens with a [TokenIssuer] sharing the
// Focus's key, before it answers any offer.
package conference
