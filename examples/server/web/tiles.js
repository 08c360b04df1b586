// The meeting's stage: a tile per participant (camera, or a placeholder
// with the name), and the screen share, shown large beside the tiles.
// The bridge sends a participant's camera, microphone and screen in one
// stream (its ID is the participant's); the screen's track ID ends in
// "-screen".

// msidTrack returns the track ID the remote description gives the
// transceiver's media section.
function msidTrack(pc, mid) {
  const sdp = (pc.remoteDescription && pc.remoteDescription.sdp) || '';
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const m = section.match(/\r?\na=mid:(\S+)/);
    if (!m || m[1] !== mid) continue;
    const msid = section.match(/\r?\na=msid:\S+ (\S+)/);
    return msid ? msid[1] : '';
  }
  return '';
}

function initials(name) {
  return (name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

export class Tiles {
  constructor(container, screen, screenLabel) {
    this.container = container;
    this.screen = screen;
    this.screenLabel = screenLabel;
    this.entries = new Map(); // participant ID -> {el, video, label, placeholder, stream}
    this.screens = new Map(); // participant ID -> their screen track
    this.receivers = new Map(); // track -> participant ID, for refresh
    this.names = new Map();
    this.self = null;
    this.localStream = null;
    this.localScreen = null;
    this.frames = new Map(); // track ID -> {frames, since}: video whose frames stopped shows the placeholder
  }

  // watch checks every second which video tracks still bring frames: a
  // camera turned off sends none (the track stays, unmuted).
  watch(pc) {
    clearInterval(this.timer);
    this.timer = setInterval(async () => {
      if (pc.connectionState === 'closed') { clearInterval(this.timer); return; }
      const now = Date.now();
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !s.trackIdentifier) return;
        const f = this.frames.get(s.trackIdentifier);
        if (!f || f.frames !== s.framesDecoded) this.frames.set(s.trackIdentifier, { frames: s.framesDecoded, since: now });
      });
      this.render();
    }, 1000);
  }

  // flowing tells whether a received video track brought a frame lately.
  flowing(track) {
    const f = this.frames.get(track.id);
    return !f || (f.frames > 0 && Date.now() - f.since < 2500);
  }

  entry(id) {
    let e = this.entries.get(id);
    if (e) return e;
    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.participant = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const placeholder = document.createElement('span');
    placeholder.className = 'placeholder';
    placeholder.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'label';
    el.append(video, placeholder, label);
    this.container.append(el);
    e = { el, video, label, placeholder, stream: new MediaStream() };
    video.srcObject = e.stream;
    this.entries.set(id, e);
    return e;
  }

  // addTrack takes a track the bridge sends: a participant's camera or
  // microphone goes on their tile, a screen on the stage.
  addTrack(pc, transceiver, track, stream) {
    const id = stream.id;
    this.receivers.set(track, id);
    const update = () => this.render();
    track.addEventListener('mute', update);
    track.addEventListener('unmute', update);
    track.addEventListener('ended', () => this.dropTrack(track));
    if (track.kind === 'video' && msidTrack(pc, transceiver.mid).endsWith('-screen')) {
      this.screens.set(id, track);
    } else {
      const e = this.entry(id);
      for (const t of e.stream.getTracks()) if (t.kind === track.kind) e.stream.removeTrack(t);
      e.stream.addTrack(track);
      e.video.srcObject = e.stream; // Chromium shows a track added to a playing stream only when set again
    }
    this.render();
  }

  dropTrack(track) {
    const id = this.receivers.get(track);
    this.receivers.delete(track);
    if (this.screens.get(id) === track) this.screens.delete(id);
    const e = this.entries.get(id);
    if (e && e.stream.getTracks().includes(track)) e.stream.removeTrack(track);
    this.render();
  }

  // refresh drops the tracks the bridge no longer sends (after its offer).
  refresh(pc) {
    for (const tr of pc.getTransceivers()) {
      const t = tr.receiver.track;
      if (this.receivers.has(t) && (tr.currentDirection === 'inactive' || tr.currentDirection === 'sendonly' || tr.stopped)) this.dropTrack(t);
    }
  }

  setLocal(stream) {
    this.localStream = stream;
    this.render();
  }

  setLocalScreen(stream, label) {
    this.localScreen = stream ? { stream, label } : null;
    this.render();
  }

  // setRoster makes a tile for everyone in the meeting and drops those
  // who left (once the bridge has taken their tracks away).
  setRoster(participants, self) {
    this.self = self;
    const present = new Set();
    for (const p of participants) {
      present.add(p.id);
      this.names.set(p.id, p.name || 'Anonymous');
      const e = this.entry(p.id);
      e.label.textContent = `${p.name || 'Anonymous'}${p.id === self ? ' (you)' : ''} · ${p.role}${p.muted ? ' · muted' : ''}${p.hand ? ' · \u270B hand raised' : ''}`;
      e.placeholder.textContent = initials(p.name || 'Anonymous');
    }
    for (const [id, e] of this.entries) {
      const live = e.stream.getTracks().some((t) => t.readyState === 'live');
      if (!present.has(id) && !live) { e.el.remove(); this.entries.delete(id); this.screens.delete(id); }
    }
    this.render();
  }

  render() {
    for (const [id, e] of this.entries) {
      let hasVideo;
      if (id === this.self) {
        if (e.video.srcObject !== this.localStream) e.video.srcObject = this.localStream;
        e.video.muted = true;
        hasVideo = !!this.localStream && this.localStream.getVideoTracks().some((t) => t.readyState === 'live');
      } else {
        hasVideo = e.stream.getVideoTracks().some((t) => t.readyState === 'live' && !t.muted && this.flowing(t));
      }
      e.el.classList.toggle('no-video', !hasVideo);
      if (!e.label.textContent) e.label.textContent = 'Joining…';
    }
    // The stage shows one screen: another's, else our own.
    let shown = null, label = '';
    for (const [id, t] of this.screens) {
      if (t.readyState === 'live') { shown = new MediaStream([t]); label = `${this.names.get(id) || 'A presenter'}'s screen`; break; }
    }
    if (!shown && this.localScreen) ({ stream: shown, label } = this.localScreen);
    const video = this.screen.querySelector('video');
    const current = video.srcObject && video.srcObject.getTracks()[0];
    const next = shown && shown.getTracks()[0];
    if (current !== next) video.srcObject = shown;
    this.screen.hidden = !shown;
    this.screenLabel.textContent = label;
    this.screen.parentElement.classList.toggle('sharing', !!shown);
  }
}
