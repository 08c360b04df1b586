// Package audio is the audio processing of Parley's conference bridge for
// participants that cannot take part in a forwarded (SFU) meeting: SIP
// phones and PSTN dial-in lines take one mixed stream instead.
//
// Everything here works at one format: [Rate] (8 kHz) mono, in frames of
// [FrameSamples] 16-bit samples (20 ms). A bridge runs one tick every
// 20 ms. On each tick it takes one packet per participant out of that
// participant's [JitterBuffer], decodes it (or, when the packet is
// missing, conceals the gap) with a [Decoder], mixes every participant's
// frame with a [Mixer] into one frame per listener that leaves out the
// listener's own voice ([Mixer.MixMinusOne]), and encodes each listener's
// frame with its [Encoder].
//
// Codecs are G.711 μ-law (PCMU) and A-law (PCMA), written in Go, and Opus
// through libopus (gopkg.in/hraban/opus.v2). Opus needs cgo and libopus,
// so it is compiled in only with the build tag "opus"; without it
// [OpusBuilt] is false and asking for Opus returns [ErrNoOpus], so the
// SDK still builds on a machine without libopus.
//
// Key presses come as RFC 4733 telephone-events ([ParseEvent],
// [DigitDetector]) or in SIP INFO requests ([ParseDTMFRelay],
// [ParseDTMFBody]). Prompts are read from WAV files ([ReadWAV],
// [Downsample]) and recordings written to them ([WriteWAV]).
//
// None of the types here is safe for concurrent use: a bridge owns one
// decoder, encoder and jitter buffer per participant and one mixer per
// meeting, and drives them all from its tick.
package audio
