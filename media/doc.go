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
// A publisher may send its video as simulcast: up to three layers of one
// track, named by their RTP stream IDs "q", "h" and "f" ([LayerLow],
// [LayerMid], [LayerHigh]; negotiated with a=rid and a=simulcast, each
// packet naming its layer in the MID and RID header extensions). Every
// subscriber gets one video track per publisher, of the layer chosen for
// it: the highest that the publisher is sending at most what
// [Session.SetMaxLayer] allows (the default is the highest), what the
// subscriber's downlink has room for, and, for 10 s after the
// subscriber's receiver reports over 10 % loss, one lower than it was.
// The bridge switches a subscriber only at a keyframe of the new layer
// (read from the VP8 payload descriptor and header), which it asks the
// publisher for, and rewrites the sequence numbers, timestamps, SSRC,
// and VP8 picture IDs and TL0PICIDX so that the subscriber sees one
// continuous stream. Video sent without simulcast is one layer,
// forwarded as it comes (or paused, like any, when the downlink has no
// room for it).
//
// The bridge estimates each subscriber's downlink: its packets to the
// subscriber carry transport-wide sequence numbers (the TWCC header
// extension), the subscriber's client says when each arrived (transport-
// cc RTCP feedback), and a send-side estimator per connection (the
// bridge's own, from queueing delay and loss, with no allocation per
// packet; [Session.DownlinkEstimate]) turns that into a bitrate.
// Retransmissions a client asks for may take 15 % of its estimate;
// beyond that they are dropped. Every half second an [Allocator] shares
// the estimate, less the audio the subscriber is sent, among the videos
// it receives, from the bitrates the bridge measures of each incoming
// layer; [DefaultAllocator] serves screen shares first, then the
// speaker's camera (the bridge reads no audio levels yet: the camera
// published last stands in), then the others, each the highest layer
// that fits what is left, and pauses (sends nothing of) a video whose
// low layer does not fit. What is sent to a subscriber is paced at 2.5
// times its estimate. An estimate starts at 10 Mbit/s (everything fits)
// and a weak path brings it down within seconds, while a path that
// recovers raises it by about 8 % a second; random loss of a few
// percent without a queue (a radio link's) does not hold it down. On a
// downlink that has shown a limit a switch up is probed first: for a
// second the subscriber is sent padding at the rate the higher layer
// adds, and switched only if its estimate did not fall. After a fall
// the estimate holds at what the path carried, 2 s and twice as long
// after each failed try (up to a minute), before it tries higher again.
// What the bridge sends a subscriber is kept for retransmission as long
// as its round trip calls for (0.5 to 2 s).
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
// ejects and mutes the audience. It also carries the meeting's chat
// ([conference.Focus.Chat], which SIP participants reach with MESSAGE):
// those in the meeting (not in its lobby, so a guest once admitted) send
// and receive it, bounded in size and in rate per socket.
//
// SIP participants (desktop clients, phones, and dial-in callers a PSTN
// gateway delivers) take one mixed audio stream: the focus hands their
// INVITE's offer to [Bridge.AnswerCall], and the [Call] it returns sends
// and receives RTP/SAVP on a UDP port of its own, with SDES keys (RFC
// 4568) from crypto/rand in the suites AEAD_AES_256_GCM,
// AEAD_AES_128_GCM, AES_256_CM_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_80
// (the most preferred the caller offers), SRTP and SRTCP replay
// protection, and symmetric RTP: it sends to where the caller's
// authenticated packets come from. Plain RTP is refused unless the focus
// allows it for a trusted gateway. Before it joins a meeting a call plays
// the IVR's prompts (media/prompts, spoken by espeak-ng), detects RFC 4733
// key presses and records; joined, the meeting's mixer (package
// media/audio: G.711 in Go, Opus through libopus with -tags opus, an
// adaptive jitter buffer and packet-loss concealment) sends every call
// the mix of everyone but itself, 20 ms at a time, and sends WebRTC
// participants the calls' mix on one Opus track (stream [CallStream]).
//
// Media is DTLS-SRTP (AES-GCM or AES-CM with HMAC-SHA1, P-256 or P-384
// key exchange: FIPS-approved choices only) with SRTP and SRTCP replay
// protection; data channels are closed as soon as they open, so DTLS
// records carry next to nothing beyond the handshake. ICE runs on one UDP
// socket for all participants. External participants reach it through the EdgeRelay
// (TURN), with credentials from edge.RelayCredentials.
package media
