package media

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// BenchmarkDownlinkEstimation measures what downlink bandwidth
// estimation adds to each packet the bridge sends a subscriber: a
// transport-wide sequence number written into its header and the
// estimator's record of it (its size and when it left), and the pacer
// it goes through first. "without" is the write alone (pion's track
// writer hands every packet an empty attributes map, as here); "bridge"
// is the bridge's estimator (downlink) with its pacer's budget holding
// every packet; "bridge-waiting" the same with every packet waiting in
// the pacer's queue (copied into a pooled buffer, sent from it); "pion-gcc" is pion's (interceptor v0.1.29: pkg/twcc's
// header extension and pkg/cc with pkg/gcc, without its pacer), which
// the bridge does not use. SRTP and the socket are not measured.
func BenchmarkDownlinkEstimation(b *testing.B) {
	info := &interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 3}}}
	sink := interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil })
	payload := make([]byte, 1000)
	run := func(b *testing.B, w interceptor.RTPWriter) {
		var exts [4]rtp.Extension
		var hdr rtp.Header
		b.ReportAllocs()
		for n := range b.N {
			hdr = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(n), Timestamp: uint32(n) * 3000, SSRC: 1, Extensions: exts[:0]}
			if _, err := w.Write(&hdr, payload, interceptor.Attributes{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("without", func(b *testing.B) { run(b, sink) })
	b.Run("bridge", func(b *testing.B) {
		// The pacer's budget always holds the packet (a rate far above
		// the benchmark's): nothing waits, as on a link with room.
		d := newDownlink()
		d.estimate.Store(1 << 50)
		defer func() { _ = d.Close() }()
		run(b, d.BindLocalStream(info, sink))
	})
	b.Run("bridge-waiting", func(b *testing.B) {
		// The least estimate: every packet waits, in a full queue, and
		// the oldest leaves as each is written.
		d := newDownlink()
		d.estimate.Store(minEstimate)
		defer func() { _ = d.Close() }()
		run(b, d.BindLocalStream(info, sink))
	})
	b.Run("pion-gcc", func(b *testing.B) {
		ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
			return gcc.NewSendSideBWE(gcc.SendSideBWEPacer(gcc.NewNoOpPacer()))
		})
		if err != nil {
			b.Fatal(err)
		}
		est, err := ccf.NewInterceptor("")
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = est.Close() }()
		extf, err := twcc.NewHeaderExtensionInterceptor()
		if err != nil {
			b.Fatal(err)
		}
		ext, err := extf.NewInterceptor("")
		if err != nil {
			b.Fatal(err)
		}
		run(b, ext.BindLocalStream(info, est.BindLocalStream(info, sink)))
	})
}
