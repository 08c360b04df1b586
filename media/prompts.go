package media

import (
	"embed"
	"fmt"
	"strings"

	"github.com/parleyuc/parley/conference"
	"github.com/parleyuc/parley/media/audio"
)

//go:embed prompts/*.wav
var promptFiles embed.FS

// prompts are the IVR's prompts as 8 kHz PCM, read once.
var prompts = mustPrompts()

func mustPrompts() map[conference.Prompt][]int16 {
	out := map[conference.Prompt][]int16{}
	entries, err := promptFiles.ReadDir("prompts")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		data, err := promptFiles.ReadFile("prompts/" + e.Name())
		if err != nil {
			panic(err)
		}
		pcm, rate, err := audio.ReadWAV(data)
		if err == nil && rate != audio.Rate {
			pcm, err = audio.Downsample(pcm, rate)
		}
		if err != nil {
			panic(fmt.Sprintf("media: prompt %s: %v", e.Name(), err))
		}
		out[conference.Prompt(strings.TrimSuffix(e.Name(), ".wav"))] = pcm
	}
	// 400 ms of 1 kHz, then 100 ms of silence.
	var phase float64
	beep := audio.Tone(nil, 1000, 8000, audio.Rate*4/10, &phase)
	out[conference.PromptBeep] = append(beep, make([]int16, audio.Rate/10)...)
	return out
}
