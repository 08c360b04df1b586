// The web client's browser tests, one scenario per run: node client.mjs
// <scenario>. Each is run by a Go test of examples/server (webclient_test.go)
// with the environment lib.mjs describes; it prints one line per step and
// exits non-zero on the first failure.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { env, step, until, run, newPage, signIn, guestJoin, admit, artifact, shown, inbound } from './lib.mjs';

// axeCheck runs axe-core (pinned in package.json) on the page as it is,
// failing on any serious or critical finding. It is evaluated through
// the DevTools protocol, which the page's Content-Security-Policy does not
// restrict.
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
async function axeCheck(page, what) {
  await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  const bad = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  step(`axe-core on ${what}: ${found.length} finding(s), ${bad.length} serious or critical${found.length ? ': ' + found.map((v) => `${v.id} (${v.impact})`).join(', ') : ''}`);
  if (bad.length) throw new Error(`axe-core on ${what}: ${JSON.stringify(bad)}`);
}

// listen records what the page's live region (#announce) says, in
// window.heard.
async function listen(page) {
  await page.evaluate(() => {
    window.heard = [];
    new MutationObserver(() => { const t = document.querySelector('#announce').textContent; if (t) window.heard.push(t); })
      .observe(document.querySelector('#announce'), { childList: true, characterData: true, subtree: true });
  });
}

const user = () => env('PARLEY_USER');
const password = () => env('PARLEY_PASSWORD');

// callsAudio tells, in page, whether the SIP callers' mix (the bridge's
// "calls" stream) plays: on an element in the document, not muted nor
// paused, and at what level (RMS over 400 ms, through an AnalyserNode).
async function callsAudio(page) {
  return page.evaluate(async () => {
    const pc = window.parleyPeerConnection;
    if (!pc || !pc.remoteDescription) return { ok: false, why: 'no peer connection' };
    let mid = null;
    for (const section of pc.remoteDescription.sdp.split(/\r?\nm=/).slice(1)) {
      const m = section.match(/a=mid:(\S+)/);
      if (m && /a=msid:calls\s/.test(section) && section.startsWith('audio')) mid = m[1];
    }
    const tr = mid !== null && pc.getTransceivers().find((t) => t.mid === mid);
    if (!tr) return { ok: false, why: 'no calls track' };
    const track = tr.receiver.track;
    const players = [...document.querySelectorAll('audio, video')].filter((e) =>
      e.isConnected && e.srcObject && e.srcObject.getTracks().includes(track) && !e.muted && !e.paused);
    const ctx = new AudioContext();
    const an = ctx.createAnalyser();
    an.fftSize = 2048;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(an);
    const buf = new Float32Array(an.fftSize);
    let sum = 0, n = 0;
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 50));
      an.getFloatTimeDomainData(buf);
      for (const x of buf) { sum += x * x; n++; }
    }
    await ctx.close();
    const rms = Math.sqrt(sum / n);
    return { ok: players.length > 0 && rms > 0.01, players: players.length, rms };
  });
}

// offScreen lists the page's visible controls that are not wholly inside
// the viewport's width, and the document's scroll width.
async function offScreen(page) {
  return page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const out = [];
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href], summary')) {
      const r = el.getBoundingClientRect();
      if ((r.width === 0 && r.height === 0) || !el.checkVisibility()) continue; // not shown
      if (r.left < 0 || r.right > w + 0.5) out.push(`${el.id || el.textContent.trim() || el.tagName} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
    return { width: w, scrollWidth: document.documentElement.scrollWidth, out };
  });
}

const scenarios = {
  // Defect 1: a SIP caller (baresip, dialled in by the Go test before this
  // runs) is heard by the organizer, and still after the roster changes
  // (a guest arrives in the lobby and is admitted); the caller is listed
  // by name.
  async 'sip-audio'(browser) {
    const organizer = await newPage(browser, 'organizer');
    await signIn(organizer, user(), password());
    await until('the organizer lists the SIP caller by name', () =>
      organizer.evaluate(() => document.querySelector('#roster').textContent.includes('Bob Builder')));
    step('the organizer lists the caller');
    let a = await until('the organizer hears the SIP caller', () => callsAudio(organizer));
    step(`the organizer hears the caller (rms ${a.rms.toFixed(3)}, ${a.players} player)`);
    const guest = await newPage(browser, 'guest');
    await guestJoin(guest, 'Gina Guest');
    await organizer.waitForSelector('#lobby-list button[data-action="admit"]', { timeout: 10000 });
    step('a guest waits in the lobby: the roster changed');
    await admit(organizer, guest);
    await until('the organizer lists the guest', () => organizer.evaluate(() => document.querySelector('#roster').textContent.includes('Gina Guest')));
    step('the guest is admitted: the roster changed again');
    a = await until('the organizer still hears the SIP caller', () => callsAudio(organizer), 5000);
    step(`the organizer still hears the caller (rms ${a.rms.toFixed(3)}, ${a.players} player)`);
    const tiles = await organizer.$$eval('.tile', (ts) => ts.map((t) => t.textContent));
    if (tiles.some((t) => !t.trim())) throw new Error(`an unlabelled tile: ${JSON.stringify(tiles)}`);
  },

  // Defect 2 (and screen share): a presenter shares the screen; the
  // admitted guest sees it large beside the cameras; the guest, an
  // attendee, has no Share control; the presenter stops it.
  async 'screen-share'(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    await admit(organizer, guest);
    step('the organizer and the admitted guest are in the meeting');
    if (await guest.isVisible('#share')) throw new Error('the guest, an attendee, may start a screen share');
    step('the guest (an attendee) has no Share control');
    await organizer.click('#share');
    await organizer.waitForSelector('#share[aria-pressed="true"]', { timeout: 5000 });
    step('the organizer shares the screen');
    const seen = await until('the guest sees the screen share', () => guest.evaluate(() => {
      const v = document.querySelector('#screen video');
      return v && v.isConnected && v.offsetWidth > 0 && v.videoWidth >= 640 && { w: v.videoWidth, h: v.videoHeight, shown: v.offsetWidth };
    }));
    step(`the guest sees the screen ${seen.w}x${seen.h}, shown ${seen.shown} px wide`);
    const cams = await guest.$$eval('#tiles .tile', (ts) => ts.map((t) => t.offsetWidth));
    if (cams.length !== 2 || cams.some((w) => w >= seen.shown)) throw new Error(`the cameras beside the screen: ${cams}`);
    await guest.waitForTimeout(300);
    await guest.screenshot({ path: artifact('screen-share.png') });
    await organizer.click('#share');
    await until('the guest sees the share end', () => guest.evaluate(() => document.querySelector('#screen').hidden));
    step('the organizer stopped sharing; the guest sees it end');
  },

  // Defect 3 (and the error paths): a wrong key and a wrong password each
  // say so in plain words.
  async 'join-errors'(browser) {
    const page = await newPage(browser, 'guest');
    await guestJoin(page, 'Gina Guest', 'not-the-key', { state: null });
    let msg = await until('the wrong key is reported', () => page.textContent('#join-error'));
    step(`wrong key: ${msg}`);
    if (!/conference key/i.test(msg) || /Failed to execute|body stream/i.test(msg)) throw new Error(`wrong key says: ${msg}`);
    await signIn(page, user(), 'not-the-password', { wait: false });
    msg = await until('the wrong password is reported', () => page.textContent('#join-error'));
    step(`wrong password: ${msg}`);
    if (!/password/i.test(msg) || /Failed to execute|body stream/i.test(msg)) throw new Error(`wrong password says: ${msg}`);
  },

  // Defect 4: the user name as people type it.
  async 'sign-in-names'(browser) {
    const domain = process.env.PARLEY_DOMAIN || 'example.test';
    const u = user();
    await Promise.all([`${u}@${domain}`, `sip:${u}@${domain}`, u[0].toUpperCase() + u.slice(1), ` ${u.toUpperCase()} `].map(async (name) => {
      const page = await newPage(browser, name);
      await signIn(page, name, password());
      step(`signed in as "${name}"`);
    }));
  },

  // Defect 5: the leader's page at 1,100 px with a guest in the lobby
  // (Reject inside its panel), then at 390 px: no sideways scrolling,
  // every control inside the viewport.
  async phone(browser) {
    const organizer = await newPage(browser, 'organizer', { viewport: { width: 1100, height: 800 } });
    const guest = await newPage(browser, 'guest', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    await organizer.waitForSelector('#lobby-list button[data-action="reject"]', { timeout: 10000 });
    const inside = await organizer.evaluate(() => {
      const b = document.querySelector('#lobby-list button[data-action="reject"]').getBoundingClientRect();
      const p = document.querySelector('#lobby-box').getBoundingClientRect();
      return { ok: b.left >= p.left && b.right <= p.right && b.top >= p.top && b.bottom <= p.bottom, b: [b.left, b.right], p: [p.left, p.right] };
    });
    if (!inside.ok) throw new Error(`at 1,100 px the lobby's Reject button spills out of its panel: ${JSON.stringify(inside)}`);
    step('at 1,100 px the Reject button is inside the lobby panel');
    let o = await offScreen(guest);
    if (o.scrollWidth > o.width || o.out.length) throw new Error(`the guest in the lobby at 390 px: ${JSON.stringify(o)}`);
    await organizer.setViewportSize({ width: 390, height: 844 });
    o = await offScreen(organizer);
    if (o.scrollWidth > o.width || o.out.length) throw new Error(`the leader with the lobby at 390 px: ${JSON.stringify(o)}`);
    await organizer.screenshot({ path: artifact('lobby-phone.png') });
    await admit(organizer, guest);
    await guest.waitForTimeout(1000); // video arrives
    // The connection indicator shows from the first measurable reading
    // (a round trip needs the media's first RTCP): later on a busy machine.
    for (const page of [organizer, guest]) await page.waitForSelector('#connection:not([hidden])', { timeout: 15000 });
    for (const [name, page] of [['organizer', organizer], ['guest', guest]]) {
      o = await offScreen(page);
      if (o.scrollWidth > o.width || o.out.length) throw new Error(`the ${name} in the meeting at 390 px: ${JSON.stringify(o)}`);
      for (const id of ['#mute', '#leave', '#hand', '#connection']) {
        if (!(await page.isVisible(id))) throw new Error(`the ${name}'s ${id} is not shown at 390 px`);
      }
      if (!(await page.isVisible('#roster'))) throw new Error(`the ${name}'s participant list is not shown at 390 px`);
    }
    await guest.click('#device-menu summary');
    o = await offScreen(guest);
    if (o.scrollWidth > o.width || o.out.length) throw new Error(`the guest's device menu at 390 px: ${JSON.stringify(o)}`);
    await guest.click('#device-menu summary');
    await guest.screenshot({ path: artifact('phone.png'), fullPage: true });
    step('at 390 px every control is inside the viewport, in the lobby and the meeting');
    await guest.setViewportSize({ width: 360, height: 740 });
    o = await offScreen(guest);
    if (o.scrollWidth > o.width || o.out.length) throw new Error(`the guest in the meeting at 360 px: ${JSON.stringify(o)}`);
    // The raised hand and the connection indicator, at 360 px.
    await guest.click('#hand');
    await organizer.waitForSelector('#roster li:has-text("Gina Guest") button[data-action="lower-hand"]', { timeout: 5000 });
    await organizer.setViewportSize({ width: 360, height: 740 });
    for (const [name, page] of [['organizer', organizer], ['guest', guest]]) {
      o = await offScreen(page);
      if (o.scrollWidth > o.width || o.out.length) throw new Error(`the ${name} with a raised hand at 360 px: ${JSON.stringify(o)}`);
      const c = await page.evaluate(() => {
        const r = document.querySelector('#connection').getBoundingClientRect();
        return { left: r.left, right: r.right, w: document.documentElement.clientWidth, shown: document.querySelector('#connection').checkVisibility() };
      });
      if (!c.shown || c.left < 0 || c.right > c.w + 0.5) throw new Error(`the ${name}'s connection indicator at 360 px: ${JSON.stringify(c)}`);
      if (!(await page.isVisible('#hand'))) throw new Error(`the ${name}'s hand button is not shown at 360 px`);
    }
    step('and at 360 px, with a raised hand (the guest\'s button, the leader\'s Lower hand) and the connection indicator');
  },

  // Defect 6: the audience muted shows in the list and on the guest's
  // button; "Join again" keeps the key; a reload keeps the guest's name.
  async 'rejoin-and-mute'(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    await admit(organizer, guest);
    await organizer.click('#mute-all');
    await guest.waitForSelector('#me:has-text("muted the audience")', { timeout: 10000 });
    const btn = await until('the guest\'s mute button shows it is muted', () => guest.evaluate(() => {
      const b = document.querySelector('#mute');
      return { ok: b.getAttribute('aria-pressed') === 'true' && !/^\s*mute\s*$/i.test(b.textContent), text: b.textContent, pressed: b.getAttribute('aria-pressed') };
    }), 5000);
    step(`the guest's button: "${btn.text}", pressed`);
    const li = await until('the organizer\'s list shows the guest muted', () => organizer.evaluate(() => {
      const li = [...document.querySelectorAll('#roster li')].find((l) => l.textContent.includes('Gina Guest'));
      return { ok: !!li && /muted/i.test(li.textContent), text: li && li.textContent };
    }), 5000);
    step(`the organizer's list: "${li.text}"`);
    await guest.click('#leave');
    await guest.waitForSelector('#ended:not([hidden])');
    const href = await guest.getAttribute('#ended a', 'href');
    if (!href || !href.includes(`key=${encodeURIComponent(env('PARLEY_KEY'))}`)) throw new Error(`"Join again" goes to ${href}`);
    step('"Join again" keeps the key');
    await guest.reload();
    const name = await guest.inputValue('#guest-name');
    if (name !== 'Gina Guest') throw new Error(`after a reload the guest's name is "${name}"`);
    const key = await guest.inputValue('#guest-key');
    if (key !== env('PARLEY_KEY')) throw new Error('after a reload the key is gone');
    step('a reload keeps the guest\'s name and key');
  },

  // The leader's controls: two guests wait in the lobby (announced,
  // counted), Admit all lets both in, promote and demote (the Share
  // control follows the role), remove.
  async 'leader-controls'(browser) {
    const organizer = await newPage(browser, 'organizer');
    const gina = await newPage(browser, 'gina');
    const hal = await newPage(browser, 'hal');
    await signIn(organizer, user(), password());
    await organizer.evaluate(() => {
      window.heard = [];
      new MutationObserver(() => { const t = document.querySelector('#announce').textContent; if (t) window.heard.push(t); })
        .observe(document.querySelector('#announce'), { childList: true, characterData: true, subtree: true });
    });
    await guestJoin(gina, 'Gina Guest');
    await guestJoin(hal, 'Hal Guest');
    await until('the organizer counts two in the lobby', () => organizer.evaluate(() => document.querySelector('#lobby-count').textContent === '(2)'));
    const heard = await until('the lobby arrivals are announced', () => organizer.evaluate(() => window.heard.filter((t) => /waiting in the lobby/.test(t))));
    step(`announced: ${JSON.stringify(heard)}`);
    await organizer.waitForTimeout(200);
    await organizer.screenshot({ path: artifact('lobby-list.png') });
    await organizer.click('#admit-all');
    await gina.waitForSelector('#meeting:not([hidden])', { timeout: 10000 });
    await hal.waitForSelector('#meeting:not([hidden])', { timeout: 10000 });
    await until('the organizer counts three participants', () => organizer.evaluate(() => document.querySelector('#count').textContent === '(3)'));
    step('Admit all let both guests in; the count is 3');
    await until('joins are announced', () => organizer.evaluate(() => window.heard.some((t) => /joined/.test(t))));
    const row = (name) => `#roster li:has-text("${name}")`;
    await organizer.click(`${row('Gina Guest')} button[data-action="promote"]`);
    await gina.waitForSelector('#share:not([hidden])', { timeout: 5000 });
    step('promoted, Gina may share her screen');
    await organizer.click(`${row('Gina Guest')} button[data-action="demote"]`);
    await gina.waitForSelector('#share', { state: 'hidden', timeout: 5000 });
    step('demoted, she may not');
    await organizer.click(`${row('Hal Guest')} button[data-action="eject"]`);
    await hal.waitForSelector('#ended:not([hidden])', { timeout: 5000 });
    const why = await hal.textContent('#ended-reason');
    if (!/removed you/.test(why)) throw new Error(`the removed guest reads: ${why}`);
    await until('the organizer counts two participants', () => organizer.evaluate(() => document.querySelector('#count').textContent === '(2)'));
    step(`removed, Hal reads: ${why}`);
  },

  // Camera and microphone toggles, with their state; the others see a
  // placeholder with the name's initials while the camera is off.
  async toggles(browser) {
    // (tile finds a participant's tile by the name on its label.)
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    await admit(organizer, guest);
    const tile = 'Gina Guest';
    await until('the organizer sees the guest\'s video', () => organizer.evaluate((name) => {
      const t = [...document.querySelectorAll('#tiles .tile')].find((x) => x.querySelector('.label').textContent.startsWith(name));
      return t && !t.classList.contains('no-video') && t.querySelector('video').videoWidth > 0;
    }, tile));
    await guest.click('#camera');
    await guest.waitForSelector('#camera[aria-pressed="true"]', { timeout: 3000 });
    const ph = await until('the organizer sees the guest\'s placeholder', () => organizer.evaluate((name) => {
      const t = [...document.querySelectorAll('#tiles .tile')].find((x) => x.querySelector('.label').textContent.startsWith(name));
      return t && t.classList.contains('no-video') && t.querySelector('.placeholder').textContent;
    }, tile), 10000);
    step(`camera off: pressed, and the organizer sees the placeholder "${ph}"`);
    await guest.click('#camera');
    await guest.waitForSelector('#camera[aria-pressed="false"]', { timeout: 3000 });
    await until('the organizer sees the guest\'s video again', () => organizer.evaluate((name) =>
      ![...document.querySelectorAll('#tiles .tile')].find((x) => x.querySelector('.label').textContent.startsWith(name)).classList.contains('no-video'), tile), 10000);
    step('camera on again: the organizer sees her video');
    await guest.click('#mute');
    await guest.waitForSelector('#mute[aria-pressed="true"]', { timeout: 3000 });
    if (await guest.evaluate(() => window.parleyPeerConnection.getSenders().some((s) => s.track && s.track.kind === 'audio' && s.track.enabled))) {
      throw new Error('muted, the microphone still sends');
    }
    await guest.click('#mute');
    await guest.waitForSelector('#mute[aria-pressed="false"]', { timeout: 3000 });
    step('the microphone mutes and unmutes, the button pressed while muted');
  },

  // Chat between the organizer and an admitted guest.
  async chat(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    if (await guest.isVisible('#chat-form')) throw new Error('the guest in the lobby can chat');
    await admit(organizer, guest);
    await guest.fill('#chat-text', 'Hello from Gina');
    await guest.press('#chat-text', 'Enter');
    await organizer.waitForSelector('#chat-log li:has-text("Gina Guest: Hello from Gina")', { timeout: 5000 });
    step('the organizer reads the guest\'s message');
    await organizer.fill('#chat-text', 'Welcome, Gina');
    await organizer.click('#chat-form button');
    await guest.waitForSelector('#chat-log li:has-text("Welcome, Gina")', { timeout: 5000 });
    step('the guest reads the organizer\'s answer');
  },

  // Error paths: rejected from the lobby, the camera refused, the meeting
  // ended (the Go test ends it when asked).
  async 'error-paths'(browser) {
    const organizer = await newPage(browser, 'organizer');
    await signIn(organizer, user(), password());
    const rejected = await newPage(browser, 'rejected');
    await guestJoin(rejected, 'Rita Rejected');
    await organizer.click('#lobby-list button[data-action="reject"]', { timeout: 10000 });
    await rejected.waitForSelector('#ended:not([hidden])', { timeout: 5000 });
    let why = await rejected.textContent('#ended-reason');
    if (!/did not let you in/.test(why)) throw new Error(`rejected reads: ${why}`);
    step(`rejected: ${why}`);

    const refused = await newPage(browser, 'refused');
    await refused.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = async () => { throw new DOMException('Permission denied', 'NotAllowedError'); };
    });
    await refused.goto(env('PARLEY_JOIN_URL'));
    why = await until('the refused camera is explained', () => refused.textContent('#media-note'));
    if (!/refused the camera/.test(why)) throw new Error(`camera refused reads: ${why}`);
    step(`camera refused: ${why}`);
    await guestJoin(refused, 'Nora Nocam');
    step('she still joins (to watch and listen)');

    // The lobby timeout: the server's wait is 15 minutes, so the test
    // speaks for it on the real socket, with the reason the signaling
    // sends (media's TestSignalingLobbyTimeout).
    const waiting = await newPage(browser, 'waiting');
    let socket = null;
    await waiting.routeWebSocket(/\/api\/signaling\/socket/, (ws) => { socket = ws; ws.connectToServer(); });
    await guestJoin(waiting, 'Walt Waiting');
    socket.send(JSON.stringify({ type: 'ended', reason: 'lobby timeout' }));
    await waiting.waitForSelector('#ended:not([hidden])', { timeout: 5000 });
    why = await waiting.textContent('#ended-reason');
    if (!/Nobody let you in/.test(why)) throw new Error(`lobby timeout reads: ${why}`);
    step(`lobby timeout: ${why}`);

    step('end the meeting');
    await organizer.waitForSelector('#ended:not([hidden])', { timeout: 10000 });
    why = await organizer.textContent('#ended-reason');
    if (!/meeting has ended/.test(why)) throw new Error(`meeting ended reads: ${why}`);
    step(`meeting ended: ${why}`);
  },

  // The pre-join screen (preview, devices, join muted with the camera
  // off), a device change in the meeting, and axe-core's check of the
  // join and meeting pages: no serious or critical findings.
  async 'prejoin-a11y'(browser) {
    const organizer = await newPage(browser, 'organizer');
    await organizer.goto(env('PARLEY_JOIN_URL'));
    await until('the preview plays', () => organizer.evaluate(() => document.querySelector('#preview').videoWidth > 0));
    const devices = await until('the devices are listed', () => organizer.evaluate(() => {
      const n = (id) => document.getElementById(id).options.length;
      return n('camera-select') > 0 && n('mic-select') > 0 && { cameras: n('camera-select'), mics: n('mic-select') };
    }));
    step(`the pre-join screen previews the camera and lists ${devices.cameras} camera(s), ${devices.mics} microphone(s)`);
    await organizer.screenshot({ path: artifact('prejoin.png') });
    await axeCheck(organizer, 'the join page');
    await organizer.check('#join-muted');
    await organizer.check('#join-camera-off');
    await until('the preview shows the camera off', () => organizer.isVisible('#preview-off'));
    await signIn(organizer, user(), password(), { keepPage: true });
    const state = await organizer.evaluate(() => ({
      mute: document.querySelector('#mute').getAttribute('aria-pressed'),
      camera: document.querySelector('#camera').getAttribute('aria-pressed'),
      sending: window.parleyPeerConnection.getSenders().filter((s) => s.track && (s.track.kind === 'video' || s.track.enabled)).length,
    }));
    if (state.mute !== 'true' || state.camera !== 'true' || state.sending !== 0) throw new Error(`joined muted with the camera off: ${JSON.stringify(state)}`);
    step('joined muted with the camera off: both buttons pressed, nothing sent');
    await organizer.click('#mute');
    if (devices.mics > 1) {
      await organizer.click('#device-menu summary');
      const other = await organizer.evaluate(() => {
        const s = document.querySelector('#mic-select');
        return [...s.options].find((o) => !o.selected).value;
      });
      await organizer.selectOption('#mic-select', other);
      await until('the microphone changes in the meeting', () => organizer.evaluate((id) => window.parleyPeerConnection.getSenders()
        .some((s) => s.track && s.track.kind === 'audio' && s.track.readyState === 'live' && s.track.getSettings().deviceId === id), other));
      await organizer.click('#device-menu summary');
      step('the microphone changed in the meeting, on the same sender');
    }
    const guest = await newPage(browser, 'guest');
    await guestJoin(guest, 'Gina Guest');
    await organizer.waitForSelector('#lobby-list button[data-action="admit"]');
    await axeCheck(organizer, 'the meeting page with the lobby');
    await admit(organizer, guest);
    await organizer.fill('#chat-text', 'Hello');
    await organizer.press('#chat-text', 'Enter');
    await guest.waitForSelector('#chat-log li');
    // With a raised hand (its mark, the leader's Lower hand) and the
    // connection indicator showing.
    await guest.click('#hand');
    await organizer.waitForSelector('#roster button[data-action="lower-hand"]', { timeout: 5000 });
    await guest.waitForSelector('#connection:not([hidden])', { timeout: 15000 });
    await organizer.waitForSelector('#connection:not([hidden])', { timeout: 15000 });
    await axeCheck(organizer, 'the meeting page (organizer)');
    await axeCheck(guest, 'the meeting page (guest)');
  },

  // Chat with a SIP participant (bob, joined over SIP by the Go test,
  // which answers when told).
  async 'sip-chat'(browser) {
    const organizer = await newPage(browser, 'organizer');
    await signIn(organizer, user(), password());
    await until('the organizer lists the SIP participant', () => organizer.evaluate(() => document.querySelector('#roster').textContent.includes('Bob Builder')));
    await organizer.fill('#chat-text', 'Hello, Bob');
    await organizer.press('#chat-text', 'Enter');
    await organizer.waitForSelector('#chat-log li:has-text("Hello, Bob")', { timeout: 5000 });
    step('wrote to the SIP participant');
    await organizer.waitForSelector('#chat-log li:has-text("Bob Builder: Hello from SIP")', { timeout: 15000 });
    step('the SIP participant\'s MESSAGE is in the chat');
  },

  // The meeting's host dies: the page, joined through another front end
  // of the pool (which relays its signaling to the host), says it is
  // reconnecting and is back in the meeting on its own, now hosted by the
  // front end it reached. The Go test kills the host when told to.
  async 'rejoin-host-dies'(browser) {
    const organizer = await newPage(browser, 'organizer');
    await signIn(organizer, user(), password());
    await until('the organizer lists the participant joined through the host', () =>
      organizer.evaluate(() => document.querySelector('#roster').textContent.includes('Bob Builder')));
    step('in the meeting through a front end that does not host it: kill the host');
    await until('the page says it is reconnecting', () =>
      organizer.evaluate(() => document.getElementById('status').textContent === 'Reconnecting…'), 10000);
    step('the page says it is reconnecting');
    await until('the page is back in the meeting, with media', () => organizer.evaluate(() => {
      const roster = document.querySelector('#roster').textContent;
      const pc = window.parleyPeerConnection;
      return document.getElementById('ended').hidden && !document.getElementById('meeting').hidden &&
        roster.includes('Alice') && !roster.includes('Bob Builder') && pc && pc.connectionState === 'connected';
    }), 45000);
    step('the page rejoined the meeting on its own');
  },

  // Raise hand: an admitted guest raises her hand from the page; the
  // organizer sees it in the list (an icon and text for screen readers)
  // and hears it announced, and lowers it, which the guest is told; an
  // attendee cannot lower another's. In the lobby there is no hand.
  async 'raise-hand'(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await listen(organizer);
    await guestJoin(guest, 'Gina Guest');
    if (await guest.isVisible('#hand')) throw new Error('the guest in the lobby may raise a hand');
    await admit(organizer, guest);
    await listen(guest);
    await guest.click('#hand');
    await guest.waitForSelector('#hand[aria-pressed="true"]:has-text("Lower hand")', { timeout: 5000 });
    step('the guest raised her hand: her button is pressed and says "Lower hand"');
    const row = '#roster li:has-text("Gina Guest")';
    await organizer.waitForSelector(`${row} .hand-mark`, { timeout: 5000 });
    const said = await organizer.$eval(`${row} .hand-mark`, (h) => ({ text: h.textContent, sr: h.querySelector('.visually-hidden').textContent, icon: h.querySelector('[aria-hidden="true"]').textContent }));
    if (said.sr !== 'hand raised' || !said.icon) throw new Error(`the organizer's hand mark: ${JSON.stringify(said)}`);
    await until('the raised hand is announced', () => organizer.evaluate(() => window.heard.some((t) => /Gina Guest raised a hand/.test(t))));
    step('the organizer sees the hand in the list (icon, "hand raised" for screen readers) and heard it announced');
    await organizer.click(`${row} button[data-action="lower-hand"]`);
    await guest.waitForSelector('#hand[aria-pressed="false"]:has-text("Raise hand")', { timeout: 5000 });
    await until('the guest is told a presenter lowered her hand', () => guest.evaluate(() => window.heard.some((t) => /presenter lowered your hand/.test(t))));
    await organizer.waitForSelector(`${row} .hand-mark`, { state: 'detached', timeout: 5000 });
    step('the organizer lowered it: the guest\'s button is released and she is told');
    await organizer.click('#hand');
    const orgRow = '#roster li:not(:has-text("Gina Guest"))';
    await guest.waitForSelector(`${orgRow} .hand-mark`, { timeout: 5000 });
    if (await guest.$(`${orgRow} button[data-action="lower-hand"]`)) throw new Error('an attendee may lower the organizer\'s hand');
    await organizer.click('#hand');
    await guest.waitForSelector(`${orgRow} .hand-mark`, { state: 'detached', timeout: 5000 });
    step('the organizer raised and lowered her own hand; the guest saw it and had no way to lower it');
  },

  // The connection indicator: each page shows how its connection is
  // (good on loopback), with the numbers, updated every few seconds; a
  // poor connection (a long round trip, given to the page's statistics)
  // shows and is announced as poor.
  async connection(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    await admit(organizer, guest);
    for (const [name, page] of [['organizer', organizer], ['guest', guest]]) {
      const c = await until(`the ${name}'s connection indicator`, () => page.evaluate(() => {
        const el = document.querySelector('#connection');
        return !el.hidden && el.checkVisibility() && {
          level: document.querySelector('#connection-level').textContent, role: document.querySelector('#connection-level').getAttribute('role'),
          detail: document.querySelector('#connection-detail').textContent, quality: el.dataset.quality, updated: Number(el.dataset.updated),
        };
      }));
      // What loopback measures depends on the machine's load: any level,
      // with its numbers; the levels themselves are checked below.
      if (!/^Connection (good|fair|poor)$/.test(c.level) || c.level !== `Connection ${c.quality}` || c.role !== 'status' || !/round trip \d+ ms/.test(c.detail)) {
        throw new Error(`the ${name}'s indicator: ${JSON.stringify(c)}`);
      }
      await until(`the ${name}'s indicator updates`, () => page.evaluate((t) => Number(document.querySelector('#connection').dataset.updated) > t, c.updated), 10000);
      step(`the ${name}: "${c.level}" (${c.detail}), updated again`);
    }
    const grades = await guest.evaluate(async () => {
      const { grade } = await import('/web/quality.js');
      return [grade({ rtt: 0.02, loss: 0, jitter: 0.002 }), grade({ rtt: 0.35, loss: 0.01 }), grade({ loss: 0.05 }), grade({ rtt: 0.05, jitter: 0.15 }), grade({ rtt: 0.8 }), grade({})];
    });
    if (JSON.stringify(grades) !== JSON.stringify(['good', 'fair', 'fair', 'poor', 'poor', null])) throw new Error(`grades: ${JSON.stringify(grades)}`);
    step(`graded: ${JSON.stringify(grades)}`);
    // The page's statistics with a round trip of ours: 20 ms, then 900 ms.
    await guest.evaluate(() => {
      const pc = window.parleyPeerConnection;
      const real = pc.getStats.bind(pc);
      window.rtt = 0.02;
      pc.getStats = async () => {
        const out = new Map();
        (await real()).forEach((s, k) => out.set(k, s.type === 'candidate-pair' ? { ...s, currentRoundTripTime: window.rtt } : s));
        return out;
      };
    });
    await until('a 20 ms round trip shows as good', () => guest.evaluate(() => document.querySelector('#connection').title.startsWith('Connection good: round trip 20 ms')), 10000);
    step('with a 20 ms round trip the guest\'s indicator says "Connection good"');
    await listen(guest);
    await guest.evaluate(() => { window.rtt = 0.9; });
    await guest.waitForSelector('#connection[data-quality="poor"]', { timeout: 10000 });
    await until('the poor connection is shown and spoken', () => guest.evaluate(() => document.querySelector('#connection-level').textContent === 'Connection poor'
      && /round trip 900 ms/.test(document.querySelector('#connection').title)));
    step('with a 900 ms round trip the guest\'s indicator says "Connection poor"');
  },

  // A camera change in the meeting (between two fake cameras): the new camera's
  // track replaces the old on the same sender, without renegotiation, and
  // the other page keeps receiving video frames; a camera chosen while the
  // camera is off is the one that starts.
  async 'camera-change'(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await guestJoin(guest, 'Gina Guest');
    await admit(organizer, guest);
    await until('the guest decodes the organizer\'s video', async () => (await inbound(guest, 'video')).frames >= 30);
    const before = await organizer.evaluate(() => {
      const pc = window.parleyPeerConnection;
      const s = pc.getSenders().find((x) => x.track && x.track.kind === 'video');
      window.videoSender = s;
      const cams = [...document.querySelector('#camera-select').options].map((o) => ({ id: o.value, label: o.textContent }));
      return { device: s.track.getSettings().deviceId, track: s.track.id, sdp: pc.localDescription.sdp, cams };
    });
    // Chromium's second fake camera (fake_device_1) is a depth camera
    // (16-bit grey), which WebRTC does not encode; the third is a colour
    // one (MJPEG).
    const third = before.cams.find((c) => c.label === 'fake_device_2');
    if (!third || before.cams.find((c) => c.id === before.device).label !== 'fake_device_0') throw new Error(`the fake cameras: ${JSON.stringify(before.cams)}, sending ${before.device}`);
    const other = third.id;
    await organizer.click('#device-menu summary');
    await organizer.selectOption('#camera-select', other);
    const after = await until('the sender sends the other camera', () => organizer.evaluate((other) => {
      const pc = window.parleyPeerConnection;
      const t = window.videoSender.track;
      return t && t.readyState === 'live' && t.getSettings().deviceId === other && {
        same: pc.getSenders().includes(window.videoSender), track: t.id, sdp: pc.localDescription.sdp, state: pc.signalingState,
        preview: document.querySelector('#preview').srcObject.getVideoTracks()[0].id,
      };
    }, other));
    await organizer.click('#device-menu summary');
    if (!after.same || after.track === before.track || after.sdp !== before.sdp || after.state !== 'stable') {
      throw new Error(`the camera change: ${JSON.stringify({ ...after, sdp: after.sdp === before.sdp })}`);
    }
    if (after.preview !== after.track) throw new Error('the preview does not show the new camera');
    step('the other camera replaced the track on the same sender, with no new offer');
    let seen = await inbound(guest, 'video');
    const got = await until('the guest still receives the organizer\'s video', async () => {
      const v = await inbound(guest, 'video');
      return v.frames >= seen.frames + 30 && v;
    });
    const tile = await guest.evaluate(() => {
      const t = [...document.querySelectorAll('#tiles .tile')].find((x) => !x.querySelector('.label').textContent.includes('(you)'));
      return { video: !t.classList.contains('no-video'), w: t.querySelector('video').videoWidth };
    });
    if (!tile.video || !tile.w) throw new Error(`the guest's tile of the organizer: ${JSON.stringify(tile)}`);
    step(`the guest decoded ${got.frames - seen.frames} more frames after the change, on the organizer's tile`);
    // Chosen while the camera is off: that camera starts.
    await organizer.click('#camera');
    await organizer.waitForSelector('#camera[aria-pressed="true"]');
    await organizer.click('#device-menu summary');
    await organizer.selectOption('#camera-select', before.device);
    if (await organizer.evaluate(() => !!window.videoSender.track)) throw new Error('choosing a camera while it is off started it');
    await organizer.click('#device-menu summary');
    await organizer.click('#camera');
    await until('the chosen camera starts', () => organizer.evaluate((id) => {
      const t = window.videoSender.track;
      return t && t.readyState === 'live' && t.getSettings().deviceId === id;
    }, before.device));
    seen = await inbound(guest, 'video');
    await until('the guest receives it', async () => (await inbound(guest, 'video')).frames >= seen.frames + 30);
    step('a camera chosen while off starts when the camera is turned on, and the guest receives it');
  },

  // A promoted guest who leaves and comes back is an attendee (the role
  // is for one visit: an anonymous guest cannot be recognised); her page
  // says so when she leaves, and the organizer's marks her "was a
  // presenter" in the lobby and "rejoined as attendee" once admitted,
  // and announces it.
  async 'rejoin-presenter'(browser) {
    const organizer = await newPage(browser, 'organizer');
    const guest = await newPage(browser, 'guest');
    await signIn(organizer, user(), password());
    await listen(organizer);
    await guestJoin(guest, 'Gina Guest');
    await admit(organizer, guest);
    const row = '#roster li:has-text("Gina Guest")';
    await organizer.click(`${row} button[data-action="promote"]`);
    await guest.waitForSelector('#share:not([hidden])', { timeout: 5000 });
    step('the guest is a presenter');
    await guest.click('#leave');
    await shown(guest, 'ended');
    const note = await guest.textContent('#ended-note');
    if (!/come back as an attendee/.test(note)) throw new Error(`the guest's page on leaving: ${note}`);
    step(`her page says: ${note}`);
    await organizer.waitForSelector(row, { state: 'detached', timeout: 5000 });
    await guest.click('#join-again');
    await guest.waitForSelector('#guest-form');
    if ((await guest.inputValue('#guest-name')) !== 'Gina Guest') throw new Error('Join again forgot the name');
    await guest.click('#guest-form button');
    await shown(guest, 'lobby');
    const lobbyRow = '#lobby-list li:has-text("Gina Guest")';
    await organizer.waitForSelector(`${lobbyRow} .rejoin-mark:has-text("was a presenter")`, { timeout: 5000 });
    step('the organizer\'s lobby list marks her "was a presenter"');
    await admit(organizer, guest);
    await organizer.waitForSelector(`${row} .rejoin-mark:has-text("rejoined as attendee")`, { timeout: 5000 });
    const role = await organizer.textContent(`${row} .role`);
    if (role !== 'attendee') throw new Error(`she rejoined as ${role}`);
    if (await guest.isVisible('#share')) throw new Error('the rejoined guest may share her screen');
    await until('the organizer heard it', () => organizer.evaluate(() => window.heard.some((t) => /was a presenter before leaving/.test(t))));
    step('admitted, she is an attendee, marked "rejoined as attendee" and announced so');
    await organizer.click(`${row} button[data-action="promote"]`);
    await organizer.waitForSelector(`${row} .rejoin-mark`, { state: 'detached', timeout: 5000 });
    await guest.waitForSelector('#share:not([hidden])', { timeout: 5000 });
    step('promoted again, the mark is gone');
  },

  // Issue 20: alice signs in with her organization's identity provider
  // from the join page (the provider's own login form), comes back signed
  // in and joins as herself, the organizer, not a guest; the page never
  // holds the session (an HttpOnly cookie) nor a token. A guest with the
  // key still waits in the lobby, and alice admits her. After leaving,
  // the page offers to join as alice again; she signs out.
  // The provider's login form: #username and #password, submitted by
  // PARLEY_ORG_SUBMIT (a selector; default #signin); screenshots are named
  // PARLEY_ORG_SHOTS-join.png and -sign-in.png (default org).
  async 'org-sign-in'(browser) {
    const submit = process.env.PARLEY_ORG_SUBMIT || '#signin';
    const shots = process.env.PARLEY_ORG_SHOTS || 'org';
    const organizer = await newPage(browser, 'organizer');
    await organizer.goto(env('PARLEY_JOIN_URL'));
    await organizer.waitForSelector('#org-login:visible', { timeout: 10000 });
    if (!(await organizer.isHidden('#org-join'))) throw new Error('"Join as" shown before signing in');
    if (!(await organizer.isHidden('#user-form'))) throw new Error('the password sign-in is offered beside the organization\'s');
    await axeCheck(organizer, 'the join page with the organization\'s sign-in');
    await organizer.screenshot({ path: artifact(`${shots}-join.png`) });
    await organizer.click('#org-login');
    await organizer.waitForSelector('#username', { timeout: 10000 });
    const provider = new URL(organizer.url());
    if (provider.origin === new URL(env('PARLEY_JOIN_URL')).origin) throw new Error(`the sign-in stayed on the server: ${provider}`);
    step(`on the provider's login page (${provider.origin}${provider.pathname})`);
    await organizer.fill('#username', user());
    await organizer.fill('#password', env('PARLEY_ORG_PASSWORD'));
    await organizer.click(submit);
    await shown(organizer, 'meeting');
    step(`back on the meeting page (${new URL(organizer.url()).pathname}) and in the meeting`);
    const me = await until('the roster lists alice by name as the organizer', () => organizer.evaluate(() => {
      const li = [...document.querySelectorAll('#roster li')].find((l) => l.textContent.includes('(you)'));
      return li && { name: li.querySelector('.name').textContent, role: li.querySelector('.role').textContent };
    }));
    if (!/^Alice Liddell \(you\)$/.test(me.name) || me.role !== 'organizer') throw new Error(`alice is listed as ${JSON.stringify(me)}`);
    step(`the roster lists ${me.name} as ${me.role}`);
    const seen = await organizer.evaluate(() => ({ cookie: document.cookie, html: document.documentElement.outerHTML }));
    if (seen.cookie.includes('parley-session') || /eyJ[\w-]+\.eyJ/.test(seen.html)) throw new Error('the page holds the session or a token');
    step('the page holds neither the session cookie nor a token');
    const guest = await newPage(browser, 'guest');
    await guestJoin(guest, 'Gina Guest');
    step('a guest with the key waits in the lobby');
    await admit(organizer, guest);
    step('alice, signed in with her organization, admits her');
    await organizer.screenshot({ path: artifact(`${shots}-sign-in.png`) });
    await organizer.click('#leave');
    await shown(organizer, 'ended');
    await organizer.click('#join-again');
    await organizer.waitForSelector('#org-join:visible', { timeout: 10000 });
    const label = await organizer.textContent('#org-join');
    if (label !== 'Join as Alice Liddell') throw new Error(`the join button says ${label}`);
    step(`after leaving, the page offers "${label}"`);
    await organizer.click('#org-logout');
    await organizer.waitForSelector('#org-login:visible', { timeout: 10000 });
    const session = await organizer.evaluate(async (id) => (await fetch(`/auth/session?meeting=${id}`)).json(),
      new URL(env('PARLEY_JOIN_URL')).pathname.split('/').pop());
    if (session.user) throw new Error(`still signed in after signing out: ${JSON.stringify(session)}`);
    step('signed out: the sign-in link is back and the server has no session');
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`no scenario ${name}: one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
// Scenarios that need more of the browser: three fake cameras.
const browserArgs = { 'camera-change': ['--use-fake-device-for-media-stream=device-count=3'] };
await run(scenarios[name], browserArgs[name]);
