// Parley's web client: joins the meeting whose page this is, over the
// browser signaling API (media.Signaling) and WebRTC to the media bridge.
// Plain ES modules, no build step, no third-party code.
import { postWithDigest, postWithSession, orgSession, signOut, userName, errorOf } from './auth.js';
import { joinError, mediaError, endedReason } from './words.js';
import { Tiles } from './tiles.js';
import { ConnectionMeter } from './quality.js';

const meetingID = document.body.dataset.meeting;
const domain = (document.body.dataset.focus || '').split('@')[1] || '';
const $ = (id) => document.getElementById(id);

let ws = null;          // the signaling WebSocket
let pc = null;          // the peer connection to the bridge
let localStream = new MediaStream(); // our camera and microphone tracks
let screenStream = null; // our screen share, while it lasts
let me = {};            // our state message: participant, state, role, muted
let roster = [];
let guestKey = '';      // the conference key we joined with, for "Join again"
let micMuted = false;   // muted by us (the presenters may mute us too: me.muted)
let cameraOff = false;
let queue = Promise.resolve(); // signaling messages, handled one at a time
let wantOffer = false;  // a change of ours waits for the bridge's offer to end
const tiles = new Tiles($('tiles'), $('screen'), $('screen-label'));
const meter = new ConnectionMeter($('connection'), $('connection-level'), $('connection-detail'));
let joinedWith = null;  // how we got our ticket: to ask for another when the connection is lost
let retries = 0;        // rejoins tried since we were last in the meeting
const maxRetries = 6;   // with the waits below, over 17 s: past a dead host's lease (10 s)
let handAsked = false;  // the hand state we last asked for, to tell a leader's lowering from ours
const presentersGone = new Map(); // name -> when: anonymous presenters who left (see renderRoster)

// ---- the page's sections and words ----

function show(section) {
  for (const id of ['join', 'lobby', 'meeting', 'ended']) $(id).hidden = id !== section;
}

function status(text) { $('status').textContent = text; }

function announce(text) {
  const a = $('announce');
  a.textContent = '';
  setTimeout(() => { a.textContent = text; }, 50); // a change, so screen readers speak it again
}

function setPressed(button, pressed, text, label) {
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = text;
  if (label) button.title = label;
}

// ---- devices: the pre-join preview and the device menus ----

async function listDevices() {
  let devices = [];
  try { devices = await navigator.mediaDevices.enumerateDevices(); } catch { return; }
  for (const [kind, select] of [['videoinput', $('camera-select')], ['audioinput', $('mic-select')]]) {
    const current = currentTrack(kind === 'videoinput' ? 'video' : 'audio');
    const id = current && current.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
      o.selected = d.deviceId === id;
      return o;
    }));
  }
}

function currentTrack(kind) {
  return localStream.getTracks().find((t) => t.kind === kind) || null;
}

// startDevice (re)starts our camera or microphone on a device, replacing
// the track in the preview and, in the meeting, on the sender.
async function startDevice(kind, deviceId) {
  const constraints = kind === 'video'
    ? { video: { width: 640, height: 480, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) } }
    : { audio: deviceId ? { deviceId: { exact: deviceId } } : true };
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  const track = stream.getTracks()[0];
  if (kind === 'audio') track.enabled = !micMuted;
  // The new track goes on the sender before the old one stops: the same
  // sender (no renegotiation), and no moment without media.
  const sender = pc && pc.getTransceivers().find((t) => t.sender && t.receiver.track.kind === kind && t.sender.parleyLocal);
  if (sender && !(kind === 'video' && cameraOff)) await sender.sender.replaceTrack(track);
  const old = currentTrack(kind);
  if (old) { old.stop(); localStream.removeTrack(old); }
  localStream.addTrack(track);
  showPreview();
  return track;
}

function showPreview() {
  const hasVideo = !!currentTrack('video') && !cameraOff;
  $('preview').srcObject = hasVideo ? localStream : null;
  $('preview-off').hidden = hasVideo;
  tiles.setLocal(hasVideo ? localStream : null);
}

async function startPreview() {
  try {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    for (const t of s.getTracks()) localStream.addTrack(t);
    $('media-note').textContent = '';
  } catch (err) {
    // One of them may work on its own.
    for (const kind of ['audio', 'video']) await startDevice(kind).catch(() => {});
    $('media-note').textContent = currentTrack('audio') && currentTrack('video') ? '' : mediaError(err);
  }
  showPreview();
  await listDevices();
}

for (const [kind, select] of [['video', $('camera-select')], ['audio', $('mic-select')]]) {
  select.onchange = () => {
    if (kind === 'video' && cameraOff) return; // the camera starts on it when turned on
    startDevice(kind, select.value).catch((err) => fail(mediaError(err)));
  };
}

// ---- joining ----

// join asks for a ticket with credentials (user and password, or a
// guest's conference key), or with the organization's session when
// user is null, and joins with it.
async function join(user, password, displayName, guest) {
  $('join-error').textContent = '';
  status('Signing in…');
  await previewReady;
  const ticket = await getTicket({ user, password, displayName, guest });
  joinedWith = { user, password, displayName, guest };
  micMuted = $('join-muted').checked;
  cameraOff = $('join-camera-off').checked;
  if (currentTrack('audio')) currentTrack('audio').enabled = !micMuted;
  if (cameraOff && currentTrack('video')) { currentTrack('video').stop(); localStream.removeTrack(currentTrack('video')); }
  showPreview();
  $('device-menu').append($('devices'));
  connect(ticket);
}

// getTicket asks for a ticket with the credentials of how; a refusal
// throws an Error in plain words, with the HTTP status.
async function getTicket({ user, password, displayName, guest }) {
  const path = `/api/meetings/${meetingID}/ticket`;
  const res = user === null
    ? await postWithSession(path, { display_name: '' })
    : await postWithDigest(path, { display_name: displayName }, user, password);
  if (!res.ok) {
    const msg = await errorOf(res);
    let err;
    if (user === null && (res.status === 401 || res.status === 403)) {
      showOrg(await orgSession(meetingID)); // signed out meanwhile
      err = new Error(`You are no longer signed in (${msg}). Sign in with your organization again.`);
    } else {
      err = new Error(joinError(res.status, msg, guest));
    }
    err.status = res.status;
    throw err;
  }
  return (await res.json()).ticket;
}

// rejoinable tells an "ended" reason that is no end: the meeting moved to
// another front end of the pool while we joined.
function rejoinable(reason) { return /hosted by another front end/.test(reason || ''); }

// connect opens the signaling socket with a ticket. A socket that closes
// without the server saying why ("ended": we left, were removed, the
// meeting ended) lost the server that hosts the meeting: we rejoin.
function connect(ticket) {
  status(retries ? 'Reconnecting…' : 'Connecting…');
  const sock = new WebSocket(`wss://${location.host}/api/signaling/socket?ticket=${encodeURIComponent(ticket)}`);
  let over = false; // the server ended our part
  ws = sock;
  sock.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'ended' && !rejoinable(msg.reason)) over = true;
    queue = queue.then(() => onMessage(msg)).catch(fail);
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return; // an earlier socket
    if (over || !$('ended').hidden) ended(ev.reason || 'disconnected');
    else reconnect(ev.reason);
  };
  sock.onopen = () => { queue = queue.then(startMedia).catch(fail); };
}

// reconnect rejoins after the connection was lost: a new ticket and
// socket, a few times with growing waits, then it gives up.
async function reconnect(reason) {
  if (pc) { pc.close(); pc = null; }
  if (screenStream) stopShare();
  if (++retries > maxRetries) { ended(reason || 'disconnected'); return; }
  status('Reconnecting…');
  announce('The connection was lost. Reconnecting…');
  await new Promise((resolve) => setTimeout(resolve, Math.min(8000, 500 * 2 ** (retries - 1)) * (0.75 + Math.random() / 2)));
  if (!$('ended').hidden) return; // left meanwhile
  let ticket;
  try {
    ticket = await getTicket(joinedWith);
  } catch (err) {
    if (err.status && err.status < 500 && err.status !== 429) { ended(err.message); return; } // refused: no use trying again
    reconnect(reason);
    return;
  }
  if ($('ended').hidden) connect(ticket);
}

function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

async function gathered(conn) {
  if (conn.iceGatheringState === 'complete') return;
  await new Promise((resolve) => {
    const done = () => { if (conn.iceGatheringState === 'complete') resolve(); };
    conn.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000); // what is gathered by then will do: the bridge learns the rest from checks
  });
}

// simulcastEncodings returns the camera's simulcast layers, lowest
// first, named as the bridge expects (media.Layer: q a quarter of the
// resolution, h half, f full), as many as browsers encode at the camera's
// resolution (Chromium: three from 960×540, two from 480×270), or null
// for none.
function simulcastEncodings(track) {
  if (window.parleySimulcast === false) return null; // a page's choice (tests)
  const s = track ? track.getSettings() : { width: 640, height: 480 };
  const pixels = (s.width || 640) * (s.height || 480);
  const f = { rid: 'f', maxBitrate: 1_500_000 };
  const h = { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 };
  if (pixels >= 960 * 540) return [{ rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 }, h, f];
  // Two layers: the half one is the lowest, and must fit a weak link
  // beside the meeting's audio (300 kbit/s: issue 28's weak subscriber).
  if (pixels >= 480 * 270) return [{ ...h, maxBitrate: 150_000 }, f];
  return null;
}

async function startMedia() {
  pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  window.parleyPeerConnection = pc; // for tests and the curious: getStats()
  // A sender for each kind even without the device, so that turning the
  // camera on later needs no renegotiation.
  for (const kind of ['audio', 'video']) {
    const track = currentTrack(kind);
    const init = { direction: 'sendrecv', streams: [localStream] };
    let tr;
    const encodings = kind === 'video' && simulcastEncodings(track);
    if (encodings) {
      // Simulcast where the browser allows it: the bridge sends each
      // participant the layer that suits it.
      try {
        tr = pc.addTransceiver(track || kind, { ...init, sendEncodings: encodings });
      } catch (err) {
        console.info('no simulcast:', err);
      }
    }
    if (!tr) tr = pc.addTransceiver(track || kind, init);
    tr.sender.parleyLocal = true;
  }
  pc.ontrack = onTrack;
  tiles.watch(pc);
  meter.watch(pc);
  pc.onconnectionstatechange = () => status(
    { connected: 'Connected', connecting: 'Connecting…', disconnected: 'Connection unstable…', failed: 'Connection lost' }[pc.connectionState] || '');
  await offer();
}

// offer sends the bridge an offer of ours. A screen share's stream is
// named "screen" in it, which is how the bridge tells it from a camera.
async function offer() {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  let sdp = pc.localDescription.sdp;
  if (screenStream) sdp = sdp.split(screenStream.id).join('screen');
  send({ type: 'offer', sdp });
}

// renegotiate offers our change now, or once the bridge's offer is done.
async function renegotiate() {
  if (pc.signalingState === 'stable') await offer();
  else wantOffer = true;
}

async function onMessage(msg) {
  switch (msg.type) {
    case 'answer':
      if (pc.signalingState === 'have-local-offer') await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      break;
    case 'offer': // the bridge adds or removes others' tracks
      if (pc.signalingState === 'have-local-offer') wantOffer = true; // ours is rolled back, and offered again
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      send({ type: 'answer', sdp: pc.localDescription.sdp });
      tiles.refresh(pc);
      break;
    case 'state': {
      retries = 0; // in the meeting (or its lobby) again
      const before = me.state;
      const hadHand = !!me.hand;
      me = msg;
      show(me.state === 'lobby' ? 'lobby' : 'meeting');
      if (me.state !== before && me.state === 'joined') announce('You are in the meeting.');
      if (me.state === 'lobby' && before !== 'lobby') announce('You are waiting in the lobby.');
      if (hadHand && !msg.hand && handAsked) { // lowered, and not by us
        handAsked = false;
        announce('A presenter lowered your hand.');
      }
      renderControls();
      break;
    }
    case 'roster':
      announceChanges(roster, msg.participants || []);
      roster = msg.participants || [];
      renderRoster();
      break;
    case 'chat':
      addChat(msg);
      break;
    case 'recorded-name': { // a dial-in caller's recorded name, for leaders
      const wav = Uint8Array.from(atob(msg.audio), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([wav], { type: 'audio/wav' }));
      const a = new Audio(url);
      a.onended = () => URL.revokeObjectURL(url);
      a.play();
      break;
    }
    case 'error':
      fail(msg.error);
      break;
    case 'ended':
      if (!rejoinable(msg.reason)) ended(msg.reason);
      break;
  }
  if (wantOffer && pc && pc.signalingState === 'stable') {
    wantOffer = false;
    await offer();
  }
}

// ---- media ----

function onTrack(ev) {
  const stream = ev.streams[0];
  if (!stream) return;
  if (stream.id === 'lobby') { // the lobby music, until we are admitted
    $('lobby-music').srcObject = stream;
    $('music-note').hidden = false;
    return;
  }
  if (stream.id === 'calls') { // the SIP callers, mixed: on its own element, which nothing else touches
    $('calls-audio').srcObject = stream;
    return;
  }
  tiles.addTrack(pc, ev.transceiver, ev.track, stream);
}

async function toggleShare() {
  if (screenStream) return stopShare();
  let s;
  try {
    s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (err) {
    if (err.name !== 'NotAllowedError') fail(`The screen could not be shared (${err.message}).`);
    return;
  }
  screenStream = s;
  const track = s.getVideoTracks()[0];
  track.onended = () => { if (screenStream === s) stopShare(); };
  const sender = pc.addTrack(track, s);
  screenStream.sender = sender;
  setPressed($('share'), true, 'Stop sharing', 'Stop sharing your screen');
  tiles.setLocalScreen(s, 'Your screen');
  announce('You are sharing your screen.');
  await renegotiate();
}

async function stopShare() {
  const s = screenStream;
  if (!s) return;
  screenStream = null;
  for (const t of s.getTracks()) t.stop();
  if (pc && s.sender) pc.removeTrack(s.sender);
  setPressed($('share'), false, 'Share screen', 'Share your screen');
  tiles.setLocalScreen(null);
  announce('You stopped sharing your screen.');
  if (pc) await renegotiate();
}

function toggleMute() {
  if (me.muted && !micMuted) { // the presenters muted the audience: our own switch does not lift it
    fail('The presenters have muted the audience; they can let it speak again.');
    return;
  }
  micMuted = !micMuted;
  const audio = currentTrack('audio');
  if (audio) audio.enabled = !micMuted;
  renderControls();
}

async function toggleCamera() {
  cameraOff = !cameraOff;
  const sender = pc && pc.getTransceivers().find((t) => t.sender.parleyLocal && t.receiver.track.kind === 'video');
  if (cameraOff) {
    const v = currentTrack('video');
    if (v) { v.stop(); localStream.removeTrack(v); }
    if (sender) await sender.sender.replaceTrack(null);
    showPreview();
  } else {
    try {
      await startDevice('video', $('camera-select').value || undefined);
    } catch (err) {
      cameraOff = true;
      fail(mediaError(err));
    }
  }
  renderControls();
}

// ---- the meeting's view ----

function leader() { return me.role === 'presenter' || me.role === 'organizer'; }

function renderControls() {
  const muted = micMuted || !!me.muted;
  setPressed($('mute'), muted, me.muted && !micMuted ? 'Muted by presenters' : muted ? 'Muted' : 'Mute',
    muted ? 'Unmute your microphone' : 'Mute your microphone');
  setPressed($('camera'), cameraOff, cameraOff ? 'Camera stopped' : 'Stop camera', cameraOff ? 'Start your camera' : 'Stop your camera');
  $('share').hidden = !leader();
  $('hand').setAttribute('aria-pressed', String(!!me.hand));
  $('hand').querySelector('.text').textContent = me.hand ? 'Lower hand' : 'Raise hand';
  $('hand').title = me.hand ? 'Lower your hand' : 'Raise your hand to ask to speak';
  if (!leader() && screenStream) stopShare();
  $('me').textContent = `You are ${me.role === 'attendee' ? 'an attendee' : 'the ' + me.role}` +
    (me.muted ? '; the presenters have muted the audience' : '');
}

// announceChanges tells screen readers who joined, left, waits in the
// lobby or raised a hand; and, for leaders, who rejoined without the
// presenter role they had (see rejoined).
function announceChanges(before, after) {
  if (!me.participant || me.state !== 'joined') return;
  const was = new Map(before.map((p) => [p.id, p]));
  const words = [];
  for (const p of after) {
    const old = was.get(p.id);
    was.delete(p.id);
    if (p.id === me.participant) continue;
    const name = p.name || 'A guest';
    if (!old && p.state === 'lobby') words.push(`${name} is waiting in the lobby`);
    else if ((!old || old.state === 'lobby') && p.state === 'joined') words.push(`${name} joined`);
    if (!old && leader() && wasPresenter(p)) words.push(`${name} was a presenter before leaving and comes back as an attendee; promote them again if it is them`);
    if (p.hand && p.state === 'joined' && !(old && old.hand)) words.push(`${name} raised a hand`);
  }
  for (const p of was.values()) {
    if (p.id === me.participant) continue;
    words.push(`${p.name || 'A guest'} left`);
    if (p.role === 'presenter' && p.state === 'joined') presentersGone.set(goneKey(p), Date.now());
  }
  if (words.length && before.length) announce(words.join('. ') + '.');
}

// A presenter's role is theirs for one visit: who rejoins gets the role
// the meeting's presenter policy gives, an attendee unless a presenter
// promotes them again. The page cannot tell a returning guest from
// another with the same name (anonymous guests prove nothing of who they
// are), so it only tells the leaders: a newcomer with the name and type
// of a presenter who left in the last half hour is marked "was a
// presenter" until promoted.
const rejoinWindow = 30 * 60 * 1000;
function goneKey(p) { return `${p.type}\n${p.name || ''}`; }
function wasPresenter(p) {
  const t = presentersGone.get(goneKey(p));
  return p.role === 'attendee' && t !== undefined && Date.now() - t < rejoinWindow;
}

function renderRoster() {
  if (!me.participant) return;
  const lead = leader();
  const list = $('roster');
  const lobby = $('lobby-list');
  list.replaceChildren();
  lobby.replaceChildren();
  let joined = 0;
  for (const p of roster) {
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = (p.name || 'Anonymous') + (p.id === me.participant ? ' (you)' : '');
    const role = document.createElement('span');
    role.className = 'role';
    role.textContent = p.state === 'lobby' ? (p.type === 'anonymous' ? 'guest' : p.type) : `${p.role}${p.type === 'dial-in' ? ' · phone' : ''}`;
    who.append(name, role);
    if (p.muted) {
      const m = document.createElement('span');
      m.className = 'muted-mark';
      m.textContent = 'muted';
      who.append(m);
    }
    if (p.hand && p.state === 'joined') {
      const h = document.createElement('span');
      h.className = 'hand-mark';
      h.title = 'Hand raised';
      const icon = document.createElement('span');
      icon.setAttribute('aria-hidden', 'true');
      icon.textContent = '\u270B';
      const text = document.createElement('span');
      text.className = 'visually-hidden';
      text.textContent = 'hand raised';
      h.append(icon, text);
      who.append(h);
    }
    if (lead && p.id !== me.participant && wasPresenter(p)) {
      const n = document.createElement('span');
      n.className = 'rejoin-mark';
      n.textContent = p.state === 'lobby' ? 'was a presenter' : 'rejoined as attendee';
      n.title = 'A presenter with this name left; the role does not come back with them. Promote them again if it is them.';
      who.append(n);
    }
    li.append(who);
    const actions = document.createElement('span');
    actions.className = 'actions';
    li.append(actions);
    const label = p.name || 'Anonymous';
    if (p.recorded_name) actions.append(button('Name', 'recorded-name', p.id, label, `Play the name ${label} recorded`, true));
    if (p.state === 'lobby') {
      if (lead) actions.append(button('Admit', 'admit', p.id, label, `Let ${label} in`), button('Reject', 'reject', p.id, label, `Turn ${label} away`, true));
      lobby.append(li);
      continue;
    }
    joined++;
    if (lead && p.id !== me.participant && p.hand) actions.append(button('Lower hand', 'lower-hand', p.id, label, `Lower ${label}'s hand`, true));
    if (lead && p.id !== me.participant) {
      if (p.role === 'attendee') actions.append(button('Promote', 'promote', p.id, label, `Make ${label} a presenter`));
      if (p.role === 'presenter') actions.append(button('Demote', 'demote', p.id, label, `Make ${label} an attendee`, true));
      if (p.role !== 'organizer') actions.append(button('Remove', 'eject', p.id, label, `Remove ${label} from the meeting`, true));
    }
    list.append(li);
  }
  $('count').textContent = `(${joined})`;
  $('lobby-count').textContent = `(${lobby.children.length})`;
  $('lobby-box').hidden = !lead || lobby.children.length === 0;
  $('admit-all').hidden = lobby.children.length < 2;
  const audienceMuted = roster.some((p) => p.muted);
  $('mute-all').hidden = !lead;
  $('mute-all').textContent = audienceMuted ? 'Unmute the audience' : 'Mute the audience';
  $('mute-all').dataset.action = audienceMuted ? 'unmute-all' : 'mute-all';
  tiles.setRoster(roster.filter((p) => p.state === 'joined'), me.participant);
  showPreview();
}

function button(text, type, participant, label, hint, secondary) {
  const b = document.createElement('button');
  b.textContent = text;
  b.dataset.action = type;
  b.setAttribute('aria-label', `${text} ${label}`); // the visible word first, then whom it is for
  b.title = hint;
  b.className = secondary ? 'small secondary' : 'small';
  b.onclick = () => send({ type, participant });
  return b;
}

// ---- chat ----

function addChat(msg) {
  const li = document.createElement('li');
  const who = document.createElement('strong');
  who.textContent = `${msg.name || 'Anonymous'}${msg.participant === me.participant ? ' (you)' : ''}: `;
  const text = document.createElement('span');
  text.textContent = msg.text;
  li.append(who, text);
  $('chat-log').append(li);
  $('chat-log').scrollTop = $('chat-log').scrollHeight;
}

// ---- leaving ----

function ended(reason) {
  if (!$('ended').hidden) return;
  show('ended');
  $('ended-reason').textContent = endedReason(reason);
  // The presenter role is for one visit (see wasPresenter).
  $('ended-note').textContent = me.role === 'presenter'
    ? 'You were a presenter. If you join again you come back as an attendee, until a presenter promotes you again.' : '';
  const again = new URL(location.href);
  again.hash = guestKey ? `key=${encodeURIComponent(guestKey)}` : '';
  $('join-again').href = again.href;
  status('');
  if (screenStream) for (const t of screenStream.getTracks()) t.stop();
  if (pc) pc.close();
  for (const t of localStream.getTracks()) t.stop();
  if (ws) ws.close(1000, 'left');
}

function fail(err) {
  $('error').textContent = String((err && err.message) || err);
  setTimeout(() => { if ($('error').textContent === String((err && err.message) || err)) $('error').textContent = ''; }, 8000);
}

// ---- the page ----

const params = new URLSearchParams(location.hash.slice(1)); // an invitation link may carry #key=...
if (params.get('key')) $('guest-key').value = params.get('key');
$('guest-name').value = localStorage.getItem('parley.guestName') || '';
$('user-name').value = localStorage.getItem('parley.userName') || '';
if (domain) $('user-name').placeholder = `bob or bob@${domain}`;

function joining(promise) {
  for (const b of document.querySelectorAll('#join form button')) b.disabled = true;
  promise.catch((err) => {
    $('join-error').textContent = err.message;
    status('');
    for (const b of document.querySelectorAll('#join form button')) b.disabled = false;
  });
}

$('guest-form').onsubmit = (ev) => {
  ev.preventDefault();
  const name = $('guest-name').value.trim();
  guestKey = $('guest-key').value.trim();
  localStorage.setItem('parley.guestName', name);
  // The key stays in the address, so that a reload or "Join again" keeps it.
  history.replaceState(null, '', `#key=${encodeURIComponent(guestKey)}`);
  joining(join('meeting:' + meetingID, guestKey, name, true));
};
$('user-form').onsubmit = (ev) => {
  ev.preventDefault();
  guestKey = '';
  localStorage.setItem('parley.userName', $('user-name').value.trim());
  joining(join(userName($('user-name').value, domain), $('user-password').value, '', false));
};
// The organization's sign-in: offered when the meeting's organization
// has an identity provider; once signed in (the provider sends the
// browser back here with #signed-in), the page joins as that user.
function showOrg(session) {
  const user = session.user;
  $('org-form').hidden = !session.sign_in && !user;
  // The organization's users sign in with its provider, not a password.
  $('user-form').hidden = session.sign_in;
  $('org-signed-out').hidden = !!user;
  $('org-signed-in').hidden = $('org-join').hidden = $('org-logout').hidden = !user;
  if (user) {
    $('org-name').textContent = user.display_name || user.uri.replace(/^sips?:/, '');
    $('org-join').textContent = `Join as ${$('org-name').textContent}`;
  }
}
$('org-form').onsubmit = (ev) => {
  ev.preventDefault();
  guestKey = '';
  joining(join(null, '', '', false));
};
$('org-logout').onclick = async () => {
  await signOut().catch(() => {});
  showOrg(await orgSession(meetingID));
};
orgSession(meetingID).then((session) => {
  showOrg(session);
  if (location.hash === '#signed-in') {
    history.replaceState(null, '', location.pathname);
    if (session.user) joining(join(null, '', '', false));
  }
});
$('join-camera-off').onchange = () => {
  cameraOff = $('join-camera-off').checked;
  if (cameraOff) {
    const v = currentTrack('video');
    if (v) { v.stop(); localStream.removeTrack(v); }
    showPreview();
  } else {
    startDevice('video', $('camera-select').value || undefined).catch((err) => { $('media-note').textContent = mediaError(err); });
  }
};
$('mute').onclick = toggleMute;
$('hand').onclick = () => {
  handAsked = !me.hand;
  send({ type: handAsked ? 'raise-hand' : 'lower-hand' });
};
$('camera').onclick = () => { toggleCamera().catch(fail); };
$('share').onclick = () => { queue = queue.then(toggleShare).catch(fail); };
$('mute-all').onclick = () => send({ type: $('mute-all').dataset.action });
$('admit-all').onclick = () => {
  for (const p of roster) if (p.state === 'lobby') send({ type: 'admit', participant: p.id });
};
$('chat-form').onsubmit = (ev) => {
  ev.preventDefault();
  const text = $('chat-text').value.trim();
  if (!text) return;
  send({ type: 'chat', text });
  $('chat-text').value = '';
};
$('leave').onclick = () => ended('you left');
// "Join again" loads the page afresh: a link to the address the page has
// (the same #key) would only move to the fragment.
$('join-again').onclick = (ev) => {
  ev.preventDefault();
  history.replaceState(null, '', $('join-again').href);
  location.reload();
};
$('lobby-leave').onclick = () => ended('you left');
navigator.mediaDevices.addEventListener('devicechange', listDevices);
const previewReady = startPreview();
