// Captures the RTP fixtures of fixtures/ (see fixtures/README.md): headless Chromium publishes
// its fake camera and microphone over WHIP to a `capstan serve --dev`, and
// examples/whep_capture.rs subscribes over WHEP and writes the packets the server forwards.
// Overwrites the fixture files; prints what each one holds.
//
//   node scripts/capture-fixtures.mjs     (after `npm ci` in tests/browser)

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { env, openPage, phase, setup, sleep, teardown } from '../tests/browser/harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(root, 'fixtures');
const CAPTURE_BIN = path.join(root, 'target/debug/examples/whep_capture');
/** Seconds captured per fixture; the resolution change happens half-way. */
const SECS = 7;

/** Runs in the page: publishes camera + microphone over WHIP; returns when connected. */
async function publishInPage({ room, identity, encodings, dtx }) {
  const { token } = await (await fetch(`/api/dev/token?room=${room}&identity=${identity}&host=1`)).json();
  const stream = await navigator.mediaDevices.getUserMedia({
    // No audio processing: the fake microphone's silence between beeps stays digital silence.
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    video: { width: 640, height: 360, frameRate: 30 },
  });
  const pc = new RTCPeerConnection();
  const video = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', sendEncodings: encodings });
  const vp8 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/VP8');
  video.setCodecPreferences(vp8);
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
  // The server's answer mirrors the offer's Opus parameters, and Chromium then sends with DTX.
  const offer = await pc.createOffer();
  const sdp = dtx ? offer.sdp.replace(/(a=fmtp:111 [^\r\n]*)/, '$1;usedtx=1') : offer.sdp;
  await pc.setLocalDescription({ type: 'offer', sdp });
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
  });
  const response = await fetch(`/whip/${room}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
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
 * Publishes as `identity`, captures what a WHEP viewer receives and stores it in fixtures/:
 * `name(kind, sent)` names the file of `video`/`audio` (`sent`: Chromium's streams), or skips it.
 */
async function run(identity, encodings, dtx, resize, name) {
  const room = `fixtures-${identity}`;
  const page = await openPage(identity, '/');
  const answerLines = await page.evaluate(publishInPage, { room, identity, encodings, dtx });
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
    const data = await readFile(path.join(dir, `${kind}.rtp`));
    const to = name(kind, sent, data);
    if (!to) continue;
    await writeFile(path.join(FIXTURES, to), data);
    await describe(to);
  }
  await rm(dir, { recursive: true, force: true });
}

execFileSync('cargo', ['build', '--bin', 'capstan', '--example', 'whep_capture'], { cwd: root, stdio: 'inherit' });
await setup();
try {
  await run('single', [{ maxBitrate: 200_000 }], true, true, (kind) =>
    kind === 'video' ? 'vp8-keyframes-resize.rtp' : 'opus-dtx.rtp',
  );
  const simulcast = [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 60_000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
    { rid: 'f', maxBitrate: 300_000 },
  ];
  for (const old of await readdir(FIXTURES)) if (old.startsWith('vp8-simulcast-')) await rm(path.join(FIXTURES, old));
  // The viewer gets one layer: named after the RID Chromium sends at the received resolution.
  await run('simulcast', simulcast, false, false, (kind, sent, data) => {
    if (kind !== 'video') return null;
    const size = vp8Summary(parse(data)).sizes[0];
    const layer = sent.find((s) => `${s.frameWidth}x${s.frameHeight}` === size);
    if (!layer) throw new Error(`no simulcast layer of Chromium is ${size}: ${JSON.stringify(sent)}`);
    return `vp8-simulcast-${layer.rid}.rtp`;
  });
} finally {
  await teardown();
}
