// Captures the RTP fixtures of fixtures/ (see fixtures/README.md) from headless Chromium's fake
// camera and microphone:
// - `single`: Chromium publishes over WHIP to a `capstan serve --dev`, and
//   examples/whep_capture.rs subscribes over WHEP and writes the packets the server forwards;
// - `simulcast`: Chromium publishes three simulcast layers over WHIP to
//   examples/whip_capture.rs, which writes every layer (the server forwards only one).
// Overwrites the fixture files; prints what each one holds.
//
//   node scripts/capture-fixtures.mjs [single] [simulcast]    (after `npm ci` in tests/browser;
//                                                              both when none is named)

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';
import { env, openPage, phase, setup, sleep, teardown } from '../tests/browser/harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(root, 'fixtures');
const CAPTURE_BIN = path.join(root, 'target/debug/examples/whep_capture');
const WHIP_BIN = path.join(root, 'target/debug/examples/whip_capture');
/** Seconds captured per fixture; the resolution change happens half-way. */
const SECS = 7;

/**
 * Runs in the page: publishes the camera (`width`x`height`), and the microphone if `audio`,
 * over WHIP to `whip` (with a Capstan dev token for `room` if given); returns when connected.
 */
async function publishInPage({ whip, room, identity, encodings, dtx, audio, width, height }) {
  const headers = { 'Content-Type': 'application/sdp' };
  if (room) {
    const { token } = await (await fetch(`/api/dev/token?room=${room}&identity=${identity}&host=1`)).json();
    headers.Authorization = `Bearer ${token}`;
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    // No audio processing: the fake microphone's silence between beeps stays digital silence.
    audio: audio && { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    video: { width, height, frameRate: 30 },
  });
  const pc = new RTCPeerConnection();
  const video = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', sendEncodings: encodings });
  const vp8 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/VP8');
  video.setCodecPreferences(vp8);
  if (audio) pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
  // The server's answer mirrors the offer's Opus parameters, and Chromium then sends with DTX.
  const offer = await pc.createOffer();
  const sdp = dtx ? offer.sdp.replace(/(a=fmtp:111 [^\r\n]*)/, '$1;usedtx=1') : offer.sdp;
  await pc.setLocalDescription({ type: 'offer', sdp });
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
  });
  const response = await fetch(whip, { method: 'POST', headers, body: pc.localDescription.sdp });
  if (response.status !== 201) throw new Error(`WHIP ${response.status}: ${await response.text()}`);
  const answer = await response.text();
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  await new Promise((resolve) => {
    if (pc.connectionState === 'connected') resolve();
    pc.addEventListener('connectionstatechange', () => pc.connectionState === 'connected' && resolve());
  });
  window.videoSender = video.sender;
  return answer.split(/\r?\n/).filter((l) => /^a=(fmtp:111|simulcast|rid)/.test(l));
}

/** Runs in the page: what the video sender sends, per RTP stream. */
async function sentStreams() {
  const report = await window.videoSender.getStats();
  return [...report.values()]
    .filter((s) => s.type === 'outbound-rtp')
    .map((s) => ({ rid: s.rid, active: s.active, frameWidth: s.frameWidth, frameHeight: s.frameHeight, framesSent: s.framesSent }));
}

/** Runs in the page: halves the resolution of every encoding. */
async function halveResolution() {
  const params = window.videoSender.getParameters();
  for (const e of params.encodings) e.scaleResolutionDownBy = (e.scaleResolutionDownBy || 1) * 2;
  await window.videoSender.setParameters(params);
}

/** Starts the WHEP receiver; resolves when it has written video.rtp and audio.rtp to `dir`. */
function capture(room, identity, dir) {
  const child = spawn(CAPTURE_BIN, [env.base, room, identity, dir, String(SECS)], { stdio: 'inherit' });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`whep_capture exited with ${code}`)))),
  );
}

/** Packets of a fixture file: `{ at (µs), data }`. */
function parse(buf) {
  const packets = [];
  for (let i = 0; i < buf.length; ) {
    const at = buf.readUInt32BE(i);
    const len = buf.readUInt16BE(i + 4);
    packets.push({ at, data: buf.subarray(i + 6, i + 6 + len) });
    i += 6 + len;
  }
  return packets;
}

/** RTP payload (after CSRCs, header extension and padding). */
function payload(p) {
  let off = 12 + 4 * (p[0] & 0x0f);
  if (p[0] & 0x10) off += 4 + 4 * p.readUInt16BE(off + 2);
  const pad = p[0] & 0x20 ? p[p.length - 1] : 0;
  return p.subarray(off, p.length - pad);
}

/** Frames, keyframes and resolutions (in order of appearance) of a VP8 fixture. */
function vp8Summary(packets) {
  let frames = 0;
  const keyframes = [];
  const sizes = [];
  for (const { at, data } of packets) {
    const pl = payload(data);
    let off = 1;
    if (pl[0] & 0x80) {
      const x = pl[1];
      off = 2;
      if (x & 0x80) off += pl[off] & 0x80 ? 2 : 1;
      if (x & 0x40) off += 1;
      if (x & 0x30) off += 1;
    }
    const start = (pl[0] & 0x10) !== 0 && (pl[0] & 0x07) === 0;
    if (!start) continue;
    frames += 1;
    const f = pl.subarray(off);
    if ((f[0] & 1) === 0) {
      const size = `${f.readUInt16LE(6) & 0x3fff}x${f.readUInt16LE(8) & 0x3fff}`;
      keyframes.push(`${(at / 1e6).toFixed(2)} s ${size}`);
      if (sizes[sizes.length - 1] !== size) sizes.push(size);
    }
  }
  return { frames, keyframes, sizes };
}

async function describe(name) {
  const buf = await readFile(path.join(FIXTURES, name));
  const packets = parse(buf);
  const secs = packets[packets.length - 1].at / 1e6;
  const info = { name, bytes: buf.length, packets: packets.length, secs: secs.toFixed(2) };
  if (name.startsWith('vp8')) Object.assign(info, vp8Summary(packets));
  else {
    const gaps = packets.slice(1).filter((p, i) => p.at - packets[i].at > 100_000);
    info.dtxGaps = gaps.length;
  }
  console.log(JSON.stringify(info));
}

/**
 * Publishes as `identity`, captures what a WHEP viewer receives and stores it in fixtures/ as
 * `files.video` and `files.audio`.
 */
async function run(identity, encodings, dtx, resize, files) {
  const room = `fixtures-${identity}`;
  const page = await openPage(identity, '/');
  const whip = `/whip/${room}`;
  const publish = { whip, room, identity, encodings, dtx, audio: true, width: 640, height: 360 };
  const answerLines = await page.evaluate(publishInPage, publish);
  phase(`${identity} publishing; answer has ${JSON.stringify(answerLines)}`);
  await sleep(2000); // let the bandwidth estimate settle and the tracks open on the server
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-capture-'));
  const done = capture(room, identity, dir);
  if (resize) {
    await sleep((SECS / 2) * 1000);
    await page.evaluate(halveResolution);
    phase(`${identity} resolution halved`);
  }
  await done;
  const sent = await page.evaluate(sentStreams);
  console.log(`${identity}: Chromium sends ${JSON.stringify(sent)}`);
  for (const kind of ['video', 'audio']) {
    await writeFile(path.join(FIXTURES, files[kind]), await readFile(path.join(dir, `${kind}.rtp`)));
    await describe(files[kind]);
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Publishes the camera as `encodings` (simulcast, one `rid` each) to examples/whip_capture.rs,
 * which writes every layer; stores them in fixtures/ as `vp8-simulcast-{rid}.rtp`.
 */
async function runSimulcast(encodings, width, height) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-capture-'));
  const rids = encodings.map((e) => e.rid);
  const child = spawn(WHIP_BIN, [dir, String(SECS), ...rids], { stdio: ['ignore', 'pipe', 'inherit'] });
  let running = true;
  const exited = new Promise((resolve, reject) =>
    child.on('exit', (code) => {
      running = false;
      if (code === 0) resolve();
      else reject(new Error(`whip_capture exited with ${code}`));
    }),
  );
  const base = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      console.log(`whip_capture: ${line}`);
      const listening = /^listening on (\S+)$/.exec(line);
      if (listening) resolve(listening[1]);
    });
    exited.then(() => reject(new Error('whip_capture exited before listening')), reject);
  });
  // A page of whip_capture's own origin, so its WHIP request is same-origin.
  const context = await env.browser.newContext();
  const page = await context.newPage();
  env.pages.simulcast = { context, page, console: [], errors: [] };
  await page.goto(`${base}/`, { timeout: 15_000 });
  const publish = { whip: '/whip', encodings, dtx: false, audio: false, width, height };
  const answerLines = await page.evaluate(publishInPage, publish);
  phase(`simulcast publishing; answer has ${JSON.stringify(answerLines)}`);
  // What Chromium sends while its bandwidth estimate grows, until whip_capture is done.
  while (running) {
    console.log(`simulcast: Chromium sends ${JSON.stringify(await page.evaluate(sentStreams))}`);
    await Promise.race([sleep(2000), exited.catch(() => {})]);
  }
  await exited;
  for (const old of await readdir(FIXTURES)) if (old.startsWith('vp8-simulcast-')) await rm(path.join(FIXTURES, old));
  for (const rid of rids) {
    const name = `vp8-simulcast-${rid}.rtp`;
    await writeFile(path.join(FIXTURES, name), await readFile(path.join(dir, name)));
    await describe(name);
  }
  await rm(dir, { recursive: true, force: true });
}

const CAPTURES = ['single', 'simulcast'];
const named = process.argv.slice(2);
for (const name of named) if (!CAPTURES.includes(name)) throw new Error(`unknown capture ${name}; one of ${CAPTURES}`);
const wanted = (name) => named.length === 0 || named.includes(name);

execFileSync('cargo', ['build', '--bin', 'capstan', '--example', 'whep_capture', '--example', 'whip_capture'], {
  cwd: root,
  stdio: 'inherit',
});
await setup();
try {
  if (wanted('single')) {
    await run('single', [{ maxBitrate: 200_000 }], true, true, {
      video: 'vp8-keyframes-resize.rtp',
      audio: 'opus-dtx.rtp',
    });
  }
  if (wanted('simulcast')) {
    // 1280x720: from a 640x360 camera Chromium sends q and h but never starts f.
    const simulcast = [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 60_000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 300_000 },
    ];
    await runSimulcast(simulcast, 1280, 720);
  }
} finally {
  await teardown();
}
