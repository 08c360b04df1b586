// Package media is Parley's A/V conferencing server.
//
// A [Bridge] runs one media session per meeting for WebRTC participants.
// A participant's client joins with the media token the focus
// ([conference.Focus.AddUser]) granted it and an SDP offer; the bridge
// verifies the token (meeting, participant, expiry, and the DTLS
// fingerprint it is bound to) and that the participant is in the meeting
// before it acts on the offer at all. Admitted, the participant's audio,
// video and screen-share tracks are forwarded to every other participant
// (an SFU: packets are not decoded), with NACK retransmissions, RTCP
// reports, transport-wide congestion control feedback, and keyframe
// requests (PLI) to a publisher when someone starts receiving its video or
// asks for one. Only presenters' screen share is forwarded.
//
// The bridge follows the focus ([conference.Focus.Watch]): an ejected or
// departed participant's media stops at once, a demoted presenter's
// screen share stops, a muted audience's audio is held back
// ([conference.Focus.MuteAll]), and every session ends when the meeting
// does. A participant waiting in the lobby may connect with a lobby token
// ([conference.LobbyRole]): it hears the lobby music (an Ogg Opus file,
// looped) and nothing of the meeting, nothing of its own is forwarded,
// and once admitted it is switched into the meeting on the same
// connection.
//
// [Signaling] brings browsers in: a short-lived single-use ticket,
// requested over HTTPS with the same credentials SIP clients use (a
// user's Digest, or a guest's meeting key), opens a WebSocket over which
// the participant joins the meeting, waits in its lobby, exchanges SDP
// with the bridge and, as a leader, admits, rejects, promotes, demotes,
// ejects and mutes the audience.
//
// Media is DTLS-SRTP (AES-GCM or AES-CM with HMAC-SHA1, P-256 or P-384
// key exchange: FIPS-approved choices only) with SRTP and SRTCP replay
// protection; data channels are closed as soon as they open, so DTLS
// records carry next to nothing beyond the handshake. ICE runs on one UDP
// socket for all participants. External participants reach it through the EdgeRelay
// (TURN), with credentials from edge.RelayCredentials.
package media
