package audio_test

import (
	"fmt"
	"time"

	"github.com/parleyuc/parley/media/audio"
)

// Three participants talk at once; each hears the other two.
func ExampleMixer_MixMinusOne() {
	in := make([][]int16, 3)
	out := make([][]int16, 3)
	for i := range in {
		in[i] = make([]int16, audio.FrameSamples)
		for k := range in[i] {
			in[i][k] = int16(1000 * (i + 1)) // 1000, 2000, 3000
		}
		out[i] = make([]int16, audio.FrameSamples)
	}
	in[2][0] = 32000 // a shout: the sums clip instead of wrapping around

	m := audio.NewMixer()
	m.MixMinusOne(out, in)
	for i := range out {
		fmt.Println("participant", i, "hears", out[i][0], out[i][1])
	}
	// Output:
	// participant 0 hears 32767 5000
	// participant 1 hears 32767 4000
	// participant 2 hears 3000 3000
}

// A gateway sends the key presses 1, 2, # as RFC 4733 events; the end
// packets of 2 are lost on the way.
func ExampleDigitDetector() {
	var d audio.DigitDetector
	ts := uint32(8000)
	for _, key := range []byte("12#") {
		events, _ := audio.DigitEvents(key, 10, 800)
		if key == '2' {
			events = events[:len(events)-3]
		}
		for _, e := range events {
			payload := e.Append(nil) // what goes in the RTP packet
			got, err := audio.ParseEvent(payload)
			if err != nil {
				panic(err)
			}
			if digit, ok := d.Feed(ts, got); ok {
				fmt.Printf("pressed %c\n", digit)
			}
		}
		ts += 1600
	}
	// Output:
	// pressed 1
	// pressed 2
	// pressed #
}

// Packets come out of order and one is lost; Pop hands them out one per
// tick, in order, and says when one is missing.
func ExampleJitterBuffer() {
	jb := audio.NewJitterBuffer(8000, 160)
	start := time.Now()
	// Packets 0, 2, 1, 4, 5 (3 is lost), one every 20 ms.
	for i, seq := range []uint16{0, 2, 1, 4, 5} {
		jb.Push(seq, uint32(seq)*160, start.Add(time.Duration(i)*20*time.Millisecond), []byte{byte(seq)})
		if payload, ok := jb.Pop(); ok {
			fmt.Println("play", payload[0])
		} else {
			fmt.Println("silence or concealment")
		}
	}
	fmt.Println("lost:", jb.Stats().Lost)
	// Output:
	// silence or concealment
	// play 0
	// play 1
	// play 2
	// silence or concealment
	// lost: 1
}
