//go:build !opus

package audio

// OpusBuilt tells whether this build has Opus (the "opus" build tag).
const OpusBuilt = false

func newOpusEncoder() (Encoder, error) { return nil, ErrNoOpus }

func newOpusDecoder() (Decoder, error) { return nil, ErrNoOpus }
