// Shared by the web client's browser tests: the browser, the steps and
// the page helpers. Each scenario is run by a Go test of examples/server,
// which starts the server and passes, in the environment:
//
//   PARLEY_JOIN_URL, PARLEY_KEY      the meeting's link and conference key
//   PARLEY_USER, PARLEY_PASSWORD     the organizer's credentials
//   PARLEY_SPKI                      base64 SHA-256 of the server's public key, the one certificate Chromium accepts
//   PARLEY_ARTIFACTS                 where screenshots go
//   CHROMIUM                         the browser (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

export const step = (msg) => console.log(`[e2e] ${msg}`);

export function artifact(name) {
  const dir = env('PARLEY_ARTIFACTS');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

// until polls fn until it returns something truthy, which it returns.
export async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last && !(typeof last === 'object' && last.ok === false)) return last;
    if (Date.now() > deadline) throw new Error(`after ${ms} ms: ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

// inbound returns the sums of the peer connection's inbound RTP stats for
// one kind of media.
export async function inbound(page, kind) {
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

// launch starts a headless Chromium; executablePath may be a wrapper
// that starts it somewhere else (a network namespace).
export async function launch(extraArgs = [], executablePath = process.env.CHROMIUM || '/usr/bin/chromium') {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
      // getDisplayMedia picks the (fake) screen without asking.
      '--auto-select-desktop-capture-source=Entire screen',
      // Trust the demo server's certificate, and only it.
      `--ignore-certificate-errors-spki-list=${env('PARLEY_SPKI')}`,
      ...extraArgs,
    ],
  });
}

// newPage opens a page in its own context (its own storage), logging its
// errors under name.
export async function newPage(browser, name, options = {}) {
  const ctx = await browser.newContext({ permissions: ['camera', 'microphone'], ...options });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`[${name} console] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`[${name} page error] ${e.message}`));
  return page;
}

// signIn has page sign in with user and password from the join page, and
// press the join button of the pre-join screen when there is one.
export async function signIn(page, user, password, { wait = true, keepPage = false } = {}) {
  if (!keepPage) await page.goto(env('PARLEY_JOIN_URL'));
  await page.fill('#user-name', user);
  await page.fill('#user-password', password);
  await page.click('#user-form button[type="submit"], #user-form button:not([type])');
  if (wait) await shown(page, 'meeting');
}

// guestJoin has page join as a guest through the invitation link, with
// its camera off if cameraOff.
export async function guestJoin(page, name, key = env('PARLEY_KEY'), { state = 'lobby', cameraOff = false } = {}) {
  await page.goto(`${env('PARLEY_JOIN_URL')}#key=${encodeURIComponent(key)}`);
  if (cameraOff) await page.check('#join-camera-off');
  await page.fill('#guest-name', name);
  if ((await page.inputValue('#guest-key')) !== key) await page.fill('#guest-key', key); // a same-page link does not reload
  await page.click('#guest-form button[type="submit"], #guest-form button:not([type])');
  if (state) await shown(page, state);
}

// shown waits for a section of the page to show, failing with what the
// page says if it does not.
export async function shown(page, section, timeout = 15000) {
  try {
    await page.waitForSelector(`#${section}:not([hidden])`, { timeout });
  } catch (err) {
    const says = await page.evaluate(() => ['status', 'join-error', 'error', 'ended-reason', 'media-note']
      .map((id) => `${id}: ${document.getElementById(id).textContent}`).join('; '));
    throw new Error(`#${section} not shown within ${timeout} ms; the page says ${says}`);
  }
}

// admit has the leader's page admit the one waiting guest.
export async function admit(leader, guest) {
  await leader.click('#lobby-list button[data-action="admit"]', { timeout: 15000 });
  await guest.waitForSelector('#meeting:not([hidden])', { timeout: 15000 });
}

// run runs a scenario with a browser, exiting non-zero on its failure.
export async function run(scenario, extraArgs) {
  const browser = await launch(extraArgs);
  let failed = false;
  try {
    await scenario(browser);
  } catch (err) {
    failed = true;
    console.error(`[e2e] FAILED: ${err.message}`);
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}
