// The connection indicator: how well our media flows, from the peer
// connection's statistics (WebRTC getStats) every few seconds: the round
// trip to the bridge, the packets lost (the bridge's and ours) and the
// jitter of what we receive. Shown as three bars and a word, with the
// numbers for whoever asks (the tooltip, and text for screen readers);
// only a change of the word is announced.

// Thresholds: good below every first number, poor at or above any second.
const limits = {
  rtt: [0.3, 0.6],      // seconds, round trip
  loss: [0.02, 0.08],   // fraction of packets lost
  jitter: [0.03, 0.1],  // seconds
};

// grade says how good a connection with these measures is: "good",
// "fair" or "poor"; null when nothing is measured yet. A measure not
// known (undefined) does not count.
export function grade({ rtt, loss, jitter }) {
  const known = Object.entries({ rtt, loss, jitter }).filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
  if (!known.length) return null;
  if (known.some(([k, v]) => v >= limits[k][1])) return 'poor';
  if (known.some(([k, v]) => v >= limits[k][0])) return 'fair';
  return 'good';
}

// measure reads the measures from one getStats report, with the packet
// counts of the previous one (prev) for the loss over the interval; it
// returns them and the counts for the next call.
export function measure(report, prev = { lost: 0, received: 0 }) {
  let rtt, jitter, remoteLoss;
  let lost = 0, received = 0;
  const pairs = new Map();
  let selected = null;
  report.forEach((s) => {
    switch (s.type) {
      case 'transport':
        if (s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
        break;
      case 'candidate-pair':
        pairs.set(s.id, s);
        break;
      case 'inbound-rtp':
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
        if (typeof s.jitter === 'number' && s.kind === 'audio') jitter = Math.max(jitter || 0, s.jitter);
        break;
      case 'remote-inbound-rtp': // the bridge's view of what we send
        if (typeof s.fractionLost === 'number') remoteLoss = Math.max(remoteLoss || 0, s.fractionLost);
        if (typeof s.roundTripTime === 'number' && rtt === undefined) rtt = s.roundTripTime;
        break;
    }
  });
  const pair = (selected && pairs.get(selected)) || [...pairs.values()].find((p) => p.nominated && p.state === 'succeeded');
  if (pair && typeof pair.currentRoundTripTime === 'number') rtt = pair.currentRoundTripTime;
  const dl = lost - prev.lost, dr = received - prev.received;
  let loss = dl + dr > 0 ? dl / (dl + dr) : undefined;
  if (remoteLoss !== undefined) loss = Math.max(loss || 0, remoteLoss);
  return { rtt, loss, jitter, counts: { lost, received } };
}

const words = { good: 'good', fair: 'fair', poor: 'poor' };

// ConnectionMeter shows a peer connection's quality in el, which holds
// .bars, #connection-level (a status region) and #connection-detail.
export class ConnectionMeter {
  constructor(el, level, detail) {
    this.el = el;
    this.level = level;
    this.detail = detail;
  }

  // watch measures pc every interval ms until it closes.
  watch(pc, interval = 2000) {
    clearInterval(this.timer);
    let counts;
    const tick = async () => {
      if (pc.connectionState === 'closed') { clearInterval(this.timer); this.el.hidden = true; return; }
      let report;
      try { report = await pc.getStats(); } catch { return; }
      const m = measure(report, counts);
      counts = m.counts;
      this.show(m);
    };
    this.timer = setInterval(tick, interval);
    tick();
  }

  show(m) {
    const g = grade(m);
    if (!g) return;
    const parts = [];
    if (m.rtt !== undefined) parts.push(`round trip ${Math.round(m.rtt * 1000)} ms`);
    if (m.loss !== undefined) parts.push(`${(m.loss * 100).toFixed(m.loss < 0.1 ? 1 : 0)}% packets lost`);
    if (m.jitter !== undefined) parts.push(`jitter ${Math.round(m.jitter * 1000)} ms`);
    const text = `Connection ${words[g]}`;
    if (this.level.textContent !== text) this.level.textContent = text; // a change only: the region announces it
    this.detail.textContent = parts.join(', ');
    this.el.title = `${text}: ${parts.join(', ')}`;
    this.el.dataset.quality = g;
    this.el.dataset.updated = String(Date.now());
    this.el.hidden = false;
  }
}
