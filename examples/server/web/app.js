// Parley's web client: joins the meeting whose page this is, over the
// browser signaling API (media.Signaling) and WebRTC to the media bridge.
// Plain JavaScript, no build step, no third-party code.
'use strict';

const meetingID = document.body.dataset.meeting;
const $ = (id) => document.getElementById(id);

let ws = null;          // the signaling WebSocket
let pc = null;          // the peer connection to the bridge
let localStream = null; // camera and microphone
let me = {};            // our state message: participant, state, role
let roster = [];
let queue = Promise.resolve(); // signaling messages, handled one at a time
const tiles = new Map();       // participant ID -> tile element

// ---- Digest authentication (RFC 7616, SHA-256), as SIP clients do it ----

async function sha256(s) {
  const b = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// challenges parses a WWW-Authenticate value, which fetch gives with
// several challenges joined by commas.
function challenges(header) {
  return (header || '').split(/,\s*(?=(?:Digest|Bearer)\s)/i).map((c) => {
    const scheme = c.trim().split(/\s/, 1)[0];
    const params = { scheme };
    for (const m of c.slice(scheme.length).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) {
      params[m[1].toLowerCase()] = m[2] !== undefined ? m[2] : m[3];
    }
    return params;
  });
}

// postWithDigest POSTs JSON, answering a Digest challenge with the
// credentials. credentials: 'omit' keeps the browser's own login dialog
// out of it.
async function postWithDigest(path, body, user, password) {
  const opts = { method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  let res = await fetch(path, opts);
  if (res.status !== 401) return res;
  const ch = challenges(res.headers.get('WWW-Authenticate'))
    .find((c) => c.scheme.toLowerCase() === 'digest' && (c.algorithm || '').toUpperCase() === 'SHA-256');
  if (!ch) throw new Error('the server offers no SHA-256 Digest authentication');
  const cnonce = [...crypto.getRandomValues(new Uint8Array(16))].map((x) => x.toString(16).padStart(2, '0')).join('');
  const nc = '00000001';
  const ha1 = await sha256(`${user}:${ch.realm}:${password}`);
  const ha2 = await sha256(`POST:${path}`);
  const response = await sha256(`${ha1}:${ch.nonce}:${nc}:${cnonce}:auth:${ha2}`);
  opts.headers.Authorization = `Digest username="${user}", realm="${ch.realm}", nonce="${ch.nonce}", uri="${path}", ` +
    `algorithm=SHA-256, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${response}"`;
  res = await fetch(path, opts);
  return res;
}

// ---- joining ----

function show(section) {
  for (const id of ['join', 'lobby', 'meeting', 'ended']) $(id).hidden = id !== section;
}

function status(text) { $('status').textContent = text; }

async function join(user, password, displayName) {
  $('join-error').textContent = '';
  status('Signing in…');
  const res = await postWithDigest(`/api/meetings/${meetingID}/ticket`, { display_name: displayName }, user, password);
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch { msg = (await res.text()) || msg; }
    throw new Error(res.status === 401 ? 'wrong user name, password or conference key' : msg);
  }
  const { ticket } = await res.json();
  status('Starting camera and microphone…');
  localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  ws = new WebSocket(`wss://${location.host}/api/signaling/socket?ticket=${encodeURIComponent(ticket)}`);
  ws.onmessage = (ev) => { queue = queue.then(() => onMessage(JSON.parse(ev.data))).catch(fail); };
  ws.onclose = (ev) => ended(ev.reason || 'disconnected');
  ws.onopen = () => { queue = queue.then(startMedia).catch(fail); };
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

async function startMedia() {
  pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  window.parleyPeerConnection = pc; // for tests and the curious: getStats()
  for (const t of localStream.getTracks()) pc.addTrack(t, localStream);
  pc.ontrack = onTrack;
  pc.onconnectionstatechange = () => status(`media ${pc.connectionState}`);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  send({ type: 'offer', sdp: pc.localDescription.sdp });
}

async function onMessage(msg) {
  switch (msg.type) {
    case 'answer':
      await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      break;
    case 'offer': // the bridge adds or removes others' tracks
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      send({ type: 'answer', sdp: pc.localDescription.sdp });
      break;
    case 'state':
      me = msg;
      show(me.state === 'lobby' ? 'lobby' : 'meeting');
      $('me').textContent = `You are ${me.role === 'presenter' ? 'a presenter' : 'an ' + me.role}` +
        (me.muted ? ' (the presenters have muted the audience)' : '');
      renderRoster();
      break;
    case 'roster':
      roster = msg.participants;
      renderRoster();
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
      $('error').textContent = msg.error;
      break;
    case 'ended':
      ended(msg.reason);
      break;
  }
}

// ---- media ----

function onTrack(ev) {
  const stream = ev.streams[0];
  if (!stream) return;
  if (stream.id === 'lobby') { // the lobby music, on our audio until we are admitted
    let audio = $('lobby-music');
    if (!audio) {
      audio = document.createElement('audio');
      audio.id = 'lobby-music';
      audio.autoplay = true;
      document.body.append(audio);
    }
    audio.srcObject = stream;
    $('music-note').hidden = false;
    return;
  }
  tile(stream.id).querySelector('video').srcObject = stream;
}

// tile returns the video tile of participant id, creating it.
function tile(id) {
  let t = tiles.get(id);
  if (!t) {
    t = document.createElement('div');
    t.className = 'tile';
    t.dataset.participant = id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const label = document.createElement('span');
    label.className = 'label';
    t.append(video, label);
    $('tiles').append(t);
    tiles.set(id, t);
  }
  return t;
}

function renderRoster() {
  if (!me.participant) return;
  const self = tile(me.participant);
  const video = self.querySelector('video');
  if (!video.srcObject) { video.srcObject = localStream; video.muted = true; }
  const leader = me.role === 'presenter' || me.role === 'organizer';
  const list = $('roster');
  const lobby = $('lobby-list');
  list.replaceChildren();
  lobby.replaceChildren();
  const present = new Set([me.participant]);
  for (const p of roster) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = p.name || 'Anonymous';
    const role = document.createElement('span');
    role.className = 'role';
    role.textContent = p.state === 'lobby' ? p.type : p.role;
    li.append(name, role);
    if (p.recorded_name) li.append(button('▶ Name', 'recorded-name', p.id, true));
    if (p.state === 'lobby') {
      if (leader) li.append(button('Admit', 'admit', p.id), button('Reject', 'reject', p.id, true));
      lobby.append(li);
      continue;
    }
    present.add(p.id);
    if (leader && p.role === 'attendee') li.append(button('Promote', 'promote', p.id));
    list.append(li);
    tile(p.id).querySelector('.label').textContent = `${p.name || 'Anonymous'}${p.id === me.participant ? ' (you)' : ''} · ${p.role}`;
  }
  $('lobby-box').hidden = !leader || lobby.children.length === 0;
  const audienceMuted = roster.some((p) => p.muted);
  $('mute-all').hidden = !leader;
  $('mute-all').textContent = audienceMuted ? 'Unmute the audience' : 'Mute the audience';
  $('mute-all').dataset.action = audienceMuted ? 'unmute-all' : 'mute-all';
  for (const [id, t] of tiles) {
    if (!present.has(id)) { t.remove(); tiles.delete(id); }
  }
}

function button(text, type, participant, secondary) {
  const b = document.createElement('button');
  b.textContent = text;
  b.dataset.action = type;
  if (secondary) b.className = 'secondary';
  b.onclick = () => send({ type, participant });
  return b;
}

function ended(reason) {
  if (!$('ended').hidden) return;
  show('ended');
  $('ended-reason').textContent = reason ? `Reason: ${reason}.` : '';
  status('');
  if (pc) pc.close();
  if (localStream) for (const t of localStream.getTracks()) t.stop();
  if (ws) ws.close(1000, 'left');
}

function fail(err) {
  $('error').textContent = String(err.message || err);
}

// ---- the page ----

const params = new URLSearchParams(location.hash.slice(1)); // an invitation link may carry #key=...
if (params.get('key')) $('guest-key').value = params.get('key');

$('guest-form').onsubmit = (ev) => {
  ev.preventDefault();
  join('meeting:' + meetingID, $('guest-key').value, $('guest-name').value)
    .catch((err) => { $('join-error').textContent = err.message; status(''); });
};
$('user-form').onsubmit = (ev) => {
  ev.preventDefault();
  join($('user-name').value, $('user-password').value, '')
    .catch((err) => { $('join-error').textContent = err.message; status(''); });
};
$('mute').onclick = () => {
  const audio = localStream && localStream.getAudioTracks()[0];
  if (!audio) return;
  audio.enabled = !audio.enabled;
  $('mute').textContent = audio.enabled ? 'Mute' : 'Unmute';
};
$('mute-all').onclick = () => send({ type: $('mute-all').dataset.action });
$('leave').onclick = () => ended('you left');
$('lobby-leave').onclick = () => ended('you left');
