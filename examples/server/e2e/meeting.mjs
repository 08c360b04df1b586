// An organizer and an anonymous guest join one meeting from its URL in
// Debian's headless Chromium, with fake camera and microphone: the guest
// waits in the lobby hearing the lobby music, the organizer admits her,
// and each decodes the other's video; then she mutes the audience, and the
// guest is told. Screenshots of the lobby and the meeting view are saved. examples/server's TestBrowserMeeting starts the server, schedules
// the meeting and runs this with:
//
//   PARLEY_JOIN_URL, PARLEY_KEY            the meeting's link and conference key
//   PARLEY_USER, PARLEY_PASSWORD           the organizer's credentials
//   PARLEY_SPKI                            base64 SHA-256 of the server's public key, the one certificate Chromium accepts
//   PARLEY_ARTIFACTS                       where the screenshots go
//   CHROMIUM                               the browser (default /usr/bin/chromium)
//
// It prints one line per step and exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const joinURL = env('PARLEY_JOIN_URL');
const artifacts = env('PARLEY_ARTIFACTS');
mkdirSync(artifacts, { recursive: true });

const step = (msg) => console.log(`[e2e] ${msg}`);

// inbound returns the sums of the peer connection's inbound RTP stats
// for one kind of media.
async function inbound(page, kind) {
  return page.evaluate(async (kind) => {
    const pc = window.parleyPeerConnection;
    if (!pc) return { packets: 0, frames: 0 };
    let packets = 0, frames = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === kind) {
        packets += s.packetsReceived || 0;
        frames += s.framesDecoded || 0;
      }
    });
    return { packets, frames };
  }, kind);
}

// layers returns the simulcast layers a page sends of its camera: RID,
// frames encoded and width, lowest first.
async function layers(page) {
  return page.evaluate(async () => {
    const out = [];
    (await window.parleyPeerConnection.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        out.push({ rid: s.rid, frames: s.framesEncoded || 0, width: s.frameWidth || 0 });
      }
    });
    return out.sort((a, b) => a.width - b.width);
  });
}

async function until(what, fn, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
    // Trust the demo server's certificate, and only it.
    `--ignore-certificate-errors-spki-list=${env('PARLEY_SPKI')}`,
  ],
});
let failed = false;
try {
  const organizer = await (await browser.newContext({ permissions: ['camera', 'microphone'] })).newPage();
  const guest = await (await browser.newContext({ permissions: ['camera', 'microphone'] })).newPage();
  for (const [name, page] of [['organizer', organizer], ['guest', guest]]) {
    page.on('console', (m) => { if (m.type() === 'error') console.log(`[${name} console] ${m.text()}`); });
    page.on('pageerror', (e) => console.log(`[${name} page error] ${e.message}`));
  }

  await organizer.goto(joinURL);
  await organizer.fill('#user-name', env('PARLEY_USER'));
  await organizer.fill('#user-password', env('PARLEY_PASSWORD'));
  await organizer.click('#user-form button');
  await organizer.waitForSelector('#meeting:not([hidden])', { timeout: 20000 });
  step('the organizer is in the meeting');

  await guest.goto(`${joinURL}#key=${encodeURIComponent(env('PARLEY_KEY'))}`);
  await guest.fill('#guest-name', 'Gina Guest');
  await guest.click('#guest-form button');
  await guest.waitForSelector('#lobby:not([hidden])', { timeout: 20000 });
  if (await guest.isVisible('#meeting')) throw new Error('the guest in the lobby sees the meeting view');
  step('the guest waits in the lobby');
  const music = await until('the guest hears the lobby music', async () => {
    const a = await inbound(guest, 'audio');
    return a.packets >= 50 && a;
  });
  if ((await inbound(guest, 'video')).packets !== 0) throw new Error('the guest in the lobby receives video');
  step(`the guest in the lobby received ${music.packets} packets of lobby music, no video`);
  await guest.screenshot({ path: join(artifacts, 'lobby.png') });

  await organizer.click('#lobby-list button[data-action="admit"]', { timeout: 20000 });
  step('the organizer admitted the guest');
  await guest.waitForSelector('#meeting:not([hidden])', { timeout: 20000 });
  step('the guest is in the meeting');

  for (const [name, page] of [['organizer', organizer], ['guest', guest]]) {
    const v = await until(`the ${name} decodes the other's video`, async () => {
      const s = await inbound(page, 'video');
      return s.frames >= 30 && s;
    });
    step(`the ${name} decoded ${v.frames} frames of video (${v.packets} packets)`);
    await until(`the ${name} sees two labelled tiles`, () =>
      page.evaluate(() => [...document.querySelectorAll('.tile .label')].filter((l) => l.textContent).length === 2));
  }
  // The camera goes out as simulcast (at its 640×480, two layers: h and
  // f), and the bridge forwards the highest.
  const sent = await until('the organizer sends two simulcast layers', async () => {
    const ls = await layers(organizer);
    return ls.filter((l) => l.frames > 0).length >= 2 && ls;
  });
  step(`the organizer sends layers ${JSON.stringify(sent)}`);
  const widest = Math.max(...sent.map((l) => l.width));
  const got = await until(`the guest receives the ${widest}-pixel layer`, () => guest.evaluate(async (widest) => {
    let width = 0;
    (await window.parleyPeerConnection.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') width = Math.max(width, s.frameWidth || 0);
    });
    return width === widest && width;
  }, widest));
  step(`the guest receives the organizer's video ${got} pixels wide`);
  const labels = await organizer.$$eval('.tile .label', (ls) => ls.map((l) => l.textContent));
  step(`the organizer's tiles: ${JSON.stringify(labels)}`);
  if (!labels.some((l) => l.startsWith('Gina Guest'))) throw new Error(`no tile for the guest: ${labels}`);
  await organizer.waitForTimeout(500); // a few more frames on screen
  await organizer.screenshot({ path: join(artifacts, 'meeting.png') });
  await guest.screenshot({ path: join(artifacts, 'meeting-guest.png') });
  step(`screenshots in ${artifacts}`);

  await organizer.click('#mute-all');
  await guest.waitForSelector('#me:has-text("muted the audience")', { timeout: 10000 });
  step('the organizer muted the audience; the guest is told');
} catch (err) {
  failed = true;
  console.error(`[e2e] FAILED: ${err.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
