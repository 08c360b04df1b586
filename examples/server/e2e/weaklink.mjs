// Issue 28's browser test (examples/server's TestWebClientOnAWeakLink): a
// Chromium organizer publishes her camera in simulcast; two guests watch,
// their cameras off (their microphones on).
// Gina's browser is on the same host as the server; Tom's runs in a
// network namespace of its own (CHROMIUM_WEAK starts it there), whose
// downlink the Go test made weak: 300 kbit/s with 3 % of its UDP lost.
// Gina receives the full layer; Tom keeps playing the organizer's video
// at a lower resolution, and his audio keeps coming.
import { env, step, until, newPage, signIn, guestJoin, admit, launch } from './lib.mjs';

// received returns the page's inbound video (frames decoded, the widest
// frame, freezes) and audio packets.
async function received(page) {
  return page.evaluate(async () => {
    const out = { frames: 0, width: 0, freezes: 0, audio: 0 };
    (await window.parleyPeerConnection.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'audio') out.audio += s.packetsReceived || 0;
      if (s.kind !== 'video') return;
      out.frames += s.framesDecoded || 0;
      out.freezes += s.freezeCount || 0;
      out.width = Math.max(out.width, s.frameWidth || 0);
    });
    return out;
  });
}

// sentLayers returns the widths of the simulcast layers the page
// encodes, narrowest first.
async function sentLayers(page) {
  return page.evaluate(async () => {
    const out = [];
    (await window.parleyPeerConnection.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid && s.framesEncoded > 0) out.push(s.frameWidth || 0);
    });
    return out.sort((a, b) => a - b);
  });
}

async function weakLink(browser, weakBrowser) {
  const organizer = await newPage(browser, 'organizer');
  await signIn(organizer, env('PARLEY_USER'), env('PARLEY_PASSWORD'));
  const gina = await newPage(browser, 'gina');
  await guestJoin(gina, 'Gina Guest', undefined, { cameraOff: true });
  await admit(organizer, gina);
  await until('Gina decodes the organizer\'s video', async () => (await received(gina)).frames >= 30, 30000);
  const tom = await newPage(weakBrowser, 'tom');
  await guestJoin(tom, 'Tom Weaklink', undefined, { cameraOff: true });
  await admit(organizer, tom);
  await until('the organizer sends two simulcast layers', async () => (await sentLayers(organizer)).length >= 2, 30000);

  // Widths, not layer names: a loaded machine's encoder scales every
  // layer down, so the test compares what the two guests receive at the
  // same moment with what the organizer sends then.
  // Later, Tom may get the full layer too: a loaded machine's encoder
  // sends it at a rate that fits his link (the bridge gives each the
  // best layer that fits), so only the first look asks for a lower one.
  const look = async (lower = true) => {
    const [sent, g, t] = await Promise.all([sentLayers(organizer), received(gina), received(tom)]);
    const full = sent[sent.length - 1];
    const tomOK = t.frames > 0 && t.width > 0 && (lower ? t.width < g.width : t.width <= g.width);
    return { sent, gina: g, tom: t, ok: g.width === full && tomOK };
  };
  const first = await until('Gina receives the full layer and Tom a lower one, decoded', look, 60000);
  step(`the organizer sends layers ${first.sent.join(' and ')} px wide; Gina receives ${first.gina.width}, Tom ${first.tom.width}`);

  const span = 10000;
  await tom.waitForTimeout(span);
  const later = await look(false);
  const fps = ((later.tom.frames - first.tom.frames) * 1000) / span;
  const ginaFps = ((later.gina.frames - first.gina.frames) * 1000) / span;
  const audio = ((later.tom.audio - first.tom.audio) * 1000) / span;
  const freezes = later.tom.freezes - first.tom.freezes;
  step(`over ${span} ms Tom decodes ${fps.toFixed(1)} frames/s at ${later.tom.width} px (${freezes} freezes) and receives ${audio.toFixed(0)} audio packets/s; Gina ${ginaFps.toFixed(1)} frames/s at ${later.gina.width} px`);
  console.log(`[result] ${JSON.stringify({ tomFps: fps, tomWidth: later.tom.width, tomFreezes: freezes, tomAudio: audio, ginaFps, ginaWidth: later.gina.width, sent: later.sent })}`);
  if (!later.ok) throw new Error(`after ${span} ms: ${JSON.stringify(later)}`);
  if (fps < 5) throw new Error(`Tom's video stalls: ${fps.toFixed(1)} frames/s over ${span} ms`);
  // Two others send audio, 50 packets a second each; 3 % are lost.
  if (audio < 80) throw new Error(`Tom's audio breaks: ${audio.toFixed(0)} packets/s of 100`);
}

const browser = await launch();
let weakBrowser;
let failed = false;
try {
  weakBrowser = await launch([], env('CHROMIUM_WEAK'));
  await weakLink(browser, weakBrowser);
} catch (err) {
  failed = true;
  console.error(`[e2e] FAILED: ${err.message}`);
} finally {
  await browser.close();
  if (weakBrowser) await weakBrowser.close();
}
process.exit(failed ? 1 : 0);
