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
// screen share stops, and every session ends when the meeting does.
//
// Media is DTLS-SRTP (AES-GCM or AES-CM with HMAC-SHA1, P-256 or P-384
// key exchange: FIPS-approved choices only) with SRTP and SRTCP replay
// protection; data channels are closed as soon as they open, so DTLS
// records carry next to nothing beyond the handshake. ICE runs on one UDP socket for all
// participants. External participants reach it through the EdgeRelay
// (TURN), with credentials from edge.RelayCredentials.
package media
