// RTX with Chromium over a lossy link: Chromium publishes its fake camera and microphone over
// WHIP through a UDP relay in this process that drops a seeded 5 % of its RTP media datagrams.
// The server's answer negotiates RTX (`rtx/90000` with `apt=` the VP8 payload type), Chromium
// retransmits what the server NACKs on its RTX stream, and the server unwraps it before
// forwarding and recording: a `tracks` recording made meanwhile decodes without an error, holds
// about as many frames as Chromium sent, and the recorder dropped no packet for its payload type
// (an RTX packet leaking through would carry the RTX payload type).
//
// The relay's drop rule: a datagram from Chromium to the server whose first byte is 0x80..0xBF
// (RTP version 2, so not STUN or DTLS) and whose second byte, masked with 0x7F, is not 72..79
// (not RTCP, payload types 200..207) is dropped when the seeded PRNG says so; everything else,
// and everything from the server, passes. The server learns Chromium's address only through the
// relay (the offer goes without candidates; the answer's candidates are rewritten to the relay).
//
//   cd tests/browser && npm ci && node --test rtx.test.mjs
//
// Environment: see harness.mjs; also CAPSTAN_BIN for `capstan token` (admin token) and
// FFPROBE / FFMPEG (default on PATH).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertClean, dumpDiagnostics, env, openPage, phase, setup, sleep, teardown, within } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, process.env.CAPSTAN_BIN || '../../target/debug/capstan');
const FFPROBE = process.env.FFPROBE || 'ffprobe';
const FFMPEG = process.env.FFMPEG || 'ffmpeg';
const ROOM = 'lossy';
const LOSS = 0.05;
const SEED = 0x5eed;
const RECORD_MS = 10_000;

/** A deterministic PRNG in [0, 1) (mulberry32). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** RTP (not RTCP, STUN or DTLS), by the rule in the header of this file. */
const isRtpMedia = (b) => b.length >= 12 && (b[0] & 0xc0) === 0x80 && !((b[1] & 0x7f) >= 72 && (b[1] & 0x7f) <= 79);

/**
 * A UDP relay on 127.0.0.1 between Chromium and the server's media address: one socket facing
 * Chromium, and one towards the server per Chromium source address (so each of Chromium's
 * candidates is a distinct peer-reflexive candidate to the server).
 */
async function startRelay(server, loss, seed) {
  const random = mulberry32(seed);
  const counts = { rtpUp: 0, droppedUp: 0, byPayloadType: {}, droppedByPayloadType: {} };
  const front = dgram.createSocket('udp4');
  const upstreams = new Map();
  const upstream = (rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let socket = upstreams.get(key);
    if (!socket) {
      socket = dgram.createSocket('udp4');
      socket.on('error', () => {}); // an ICMP error from an earlier send: not the relay's end
      socket.on('message', (msg) => front.send(msg, rinfo.port, rinfo.address));
      socket.bind(0, '127.0.0.1');
      upstreams.set(key, socket);
    }
    return socket;
  };
  front.on('error', () => {});
  front.on('message', (msg, rinfo) => {
    if (isRtpMedia(msg)) {
      const pt = msg[1] & 0x7f;
      counts.rtpUp += 1;
      counts.byPayloadType[pt] = (counts.byPayloadType[pt] || 0) + 1;
      if (random() < loss) {
        counts.droppedUp += 1;
        counts.droppedByPayloadType[pt] = (counts.droppedByPayloadType[pt] || 0) + 1;
        return;
      }
    }
    upstream(rinfo).send(msg, server.port, server.address);
  });
  await new Promise((resolve) => front.bind(0, '127.0.0.1', resolve));
  return {
    address: front.address(),
    counts,
    close() {
      for (const socket of upstreams.values()) socket.close();
      front.close();
    },
  };
}

/** The UDP `a=candidate` lines' fields (foundation, component, transport, priority, address, port, ...). */
const udpCandidate = (line) => {
  const m = /^a=candidate:(.*)$/.exec(line.trimEnd());
  const fields = m && m[1].split(' ');
  return fields && fields.length >= 6 && fields[2].toLowerCase() === 'udp' ? fields : null;
};

/** The server's media address: the first UDP candidate of its answer. */
function mediaAddress(sdp) {
  const fields = sdp.split('\n').map(udpCandidate).find(Boolean);
  assert.ok(fields, `a UDP candidate in the answer:\n${sdp}`);
  return { address: fields[4], port: Number(fields[5]) };
}

/** `sdp` with every UDP candidate pointing at `relay`. */
const candidatesVia = (sdp, relay) =>
  sdp
    .split('\n')
    .map((line) => {
      const fields = udpCandidate(line);
      if (!fields) return line;
      fields[4] = relay.address;
      fields[5] = String(relay.port);
      return `a=candidate:${fields.join(' ')}${line.endsWith('\r') ? '\r' : ''}`;
    })
    .join('\n');

/** `sdp` without candidates: the server learns Chromium's address from the relayed packets only. */
const withoutCandidates = (sdp) =>
  sdp
    .split('\n')
    .filter((line) => !line.startsWith('a=candidate:'))
    .join('\n');

/** VP8's payload type in `sdp` and the RTX payload types whose `apt=` names it. */
function rtxOfVp8(sdp) {
  const vp8 = /^a=rtpmap:(\d+) VP8\/90000/im.exec(sdp);
  const rtx = [...sdp.matchAll(/^a=rtpmap:(\d+) rtx\/90000/gim)].map((m) => m[1]);
  const apt = (pt) => (new RegExp(`^a=fmtp:${pt} .*\\bapt=(\\d+)`, 'im').exec(sdp) || [])[1];
  return { vp8: vp8 && vp8[1], rtx: rtx.filter((pt) => vp8 && apt(pt) === vp8[1]) };
}

/** An HTTP request without keep-alive; resolves `{ status, body }` (a Buffer). */
function request(method, url, { token, contentType, body } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (contentType) headers['Content-Type'] = contentType;
    const req = http.request(url, { method, headers, agent: false, timeout: 30_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function json(method, urlPath, token, expected) {
  const { status, body } = await request(method, `${env.base}${urlPath}`, { token });
  assert.equal(status, expected, `${method} ${urlPath}: ${body}`);
  return JSON.parse(body.toString());
}

function run(bin, args) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Runs in the page: offers to send the camera and microphone; resolves the offer once gathered. */
async function offerInPage() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360, frameRate: 30 } });
  const pc = new RTCPeerConnection();
  window.pc = pc;
  window.videoSender = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly' }).sender;
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
  });
  return pc.localDescription.sdp;
}

/** Runs in the page: applies the answer; resolves once connected. */
async function answerInPage(sdp) {
  const { pc } = window;
  await pc.setRemoteDescription({ type: 'answer', sdp });
  await new Promise((resolve) => {
    if (pc.connectionState === 'connected') resolve();
    pc.addEventListener('connectionstatechange', () => pc.connectionState === 'connected' && resolve());
  });
}

/** Runs in the page: the video sender's outbound-rtp stats. */
async function videoStats() {
  const report = await window.videoSender.getStats();
  const s = [...report.values()].find((r) => r.type === 'outbound-rtp');
  return s && {
    ssrc: s.ssrc,
    rtxSsrc: s.rtxSsrc,
    packetsSent: s.packetsSent,
    retransmittedPacketsSent: s.retransmittedPacketsSent,
    nackCount: s.nackCount,
    framesSent: s.framesSent,
    framesPerSecond: s.framesPerSecond,
    frameWidth: s.frameWidth,
    frameHeight: s.frameHeight,
  };
}

/** The value of the counter `name{reason="…"}` in `/metrics` (absent: 0). */
async function counter(name, reason) {
  const { status, body } = await request('GET', `${env.base}/metrics`);
  assert.equal(status, 200, 'GET /metrics');
  const m = new RegExp(`^${name}\\{reason="${reason}"\\} (\\d+)`, 'm').exec(body.toString());
  return m ? Number(m[1]) : 0;
}

before(setup, { timeout: 60_000 });
after(teardown, { timeout: 20_000 });

test('Chromium publishes with RTX through a lossy link; the server unwraps it and records cleanly', { timeout: 120_000 }, async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'capstan-rtx-'));
  let relay;
  try {
    const page = await openPage('publisher', '/');
    const { token } = await json('GET', `/api/dev/token?room=${ROOM}&identity=cam`, null, 200);
    const { token: host } = await json('GET', `/api/dev/token?room=${ROOM}&identity=rec&host=1`, null, 200);
    const admin = (await run(BIN, ['token', '--dev', '--admin', '--room', ROOM, '--identity', 'admin'])).stdout.trim();

    const offer = await within(20_000, 'offer', () => page.evaluate(offerInPage));
    const whip = await request('POST', `${env.base}/whip/${ROOM}`, {
      token,
      contentType: 'application/sdp',
      body: withoutCandidates(offer),
    });
    const answer = whip.body.toString();
    assert.equal(whip.status, 201, `WHIP: ${answer}`);
    const { vp8, rtx } = rtxOfVp8(answer);
    assert.ok(vp8 && rtx.length === 1, `the answer negotiates one rtx/90000 with apt=${vp8} (VP8):\n${answer}`);
    assert.match(offer, /^a=ssrc-group:FID \d+ \d+/m, 'Chromium offers an RTX SSRC');

    relay = await startRelay(mediaAddress(answer), LOSS, SEED);
    await within(20_000, 'connected through the relay', () => page.evaluate(answerInPage, candidatesVia(answer, relay.address)));
    phase(`connected through the relay at ${relay.address.port}; VP8 ${vp8}, RTX ${rtx[0]}`);
    await sleep(2000); // let the encoder ramp up to its resolution

    const started = await json('POST', `/api/webrtc/rooms/${ROOM}/recording/start?mode=tracks&recording_format=webm`, host, 201);
    const id = started.recording_id;
    const before = await within(5000, 'stats', () => page.evaluate(videoStats));
    const relayBefore = structuredClone(relay.counts);
    phase(`recording ${id}`);
    await sleep(RECORD_MS - 1000);

    const { pipelines } = await json('GET', '/api/webrtc/pipelines', admin, 200);
    const pipeline = pipelines.find((p) => p.recording_id === id);
    assert.ok(pipeline, `pipeline of ${id} in ${JSON.stringify(pipelines)}`);
    const inputs = pipeline.inputs.map(({ kind, packets_in, packets_dropped }) => ({ kind, packets_in, packets_dropped }));
    await sleep(1000);

    const stopped = await json('POST', `/api/webrtc/rooms/${ROOM}/recording/${id}/stop`, host, 200);
    const after = await within(5000, 'stats', () => page.evaluate(videoStats));
    const relayAfter = structuredClone(relay.counts);
    assert.equal(stopped.status, 'completed', JSON.stringify(stopped));
    phase('recording stopped');

    const download = await request('GET', `${env.base}/api/webrtc/recordings/${id}/download?file=0`, { token: host });
    assert.equal(download.status, 200, `download: ${download.body.toString().slice(0, 200)}`);
    const file = path.join(tmp, 'cam.webm');
    await writeFile(file, download.body);
    const probe = JSON.parse(
      (await run(FFPROBE, ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', file])).stdout,
    );
    // `-enc_time_base:v -1`: decoded frames keep the file's time base (see
    // pipelines/tests/common/check.rs, assert_decodes_cleanly, for the re-timing it avoids).
    const decode = await run(FFMPEG, ['-v', 'error', '-nostdin', '-i', file, '-enc_time_base:v', '-1', '-f', 'null', '-']);
    const video = probe.streams.find((s) => s.codec_type === 'video');
    const frames = Number(video && video.nb_read_frames);
    const duration = Number(probe.format.duration);
    const sentFrames = after.framesSent - before.framesSent;
    const droppedWhileRecording = (pt) =>
      (relayAfter.droppedByPayloadType[pt] || 0) - (relayBefore.droppedByPayloadType[pt] || 0);
    const lostVideo = droppedWhileRecording(vp8) + droppedWhileRecording(rtx[0]);
    const retransmitted = after.retransmittedPacketsSent - before.retransmittedPacketsSent;
    const measured = {
      loss: LOSS,
      relay: {
        whileRecording: { rtp: relayAfter.rtpUp - relayBefore.rtpUp, dropped: relayAfter.droppedUp - relayBefore.droppedUp, lostVideo },
        // Since the connection came up; RTX packets include Chromium's bandwidth probes.
        rtpByPayloadType: relayAfter.byPayloadType,
        droppedByPayloadType: relayAfter.droppedByPayloadType,
      },
      chromium: { before, after },
      recording: { duration, frames, sentFrames, size: video && [video.width, video.height], inputs },
      decodeErrors: decode.stderr,
      payloadTypeDrops: await counter('capstan_recorder_dropped_packets_total', 'payload_type'),
      // Copies of packets already forwarded: late retransmissions, and old packets Chromium
      // resends on its RTX stream as bandwidth probes, unwrapped like any retransmission.
      duplicatesNotForwarded: await counter('capstan_dropped_packets_total', 'duplicate'),
    };
    console.log(`# measured ${JSON.stringify(measured)}`);
    const what = JSON.stringify(measured);

    assert.ok(relayAfter.droppedUp - relayBefore.droppedUp > 0, `the relay dropped media while recording: ${what}`);
    assert.ok((relayAfter.byPayloadType[rtx[0]] || 0) > 0, `Chromium sent RTX packets (payload type ${rtx[0]}): ${what}`);
    assert.ok(after.rtxSsrc > 0, `Chromium has an RTX SSRC: ${what}`);
    assert.ok(after.nackCount - before.nackCount > 0, `the server NACKed: ${what}`);
    assert.ok(retransmitted > 0, `Chromium retransmitted: ${what}`);
    // A repair the NACK generator does not see arrive is asked for every 100 ms: about 50
    // retransmissions per lost packet instead of one.
    assert.ok(retransmitted <= 2 * lostVideo + 10, `${retransmitted} retransmissions for ${lostVideo} lost video packets: ${what}`);

    assert.ok(video && video.codec_name === 'vp8', `VP8 video: ${what}`);
    assert.deepEqual([video.width, video.height], [after.frameWidth, after.frameHeight], `the size Chromium sends: ${what}`);
    assert.equal(decode.stderr, '', `the file decodes without an error: ${what}`);
    assert.ok(frames >= sentFrames * 0.9, `${frames} frames in the file, Chromium sent ${sentFrames}: ${what}`);
    for (const input of inputs) {
      assert.ok(input.packets_in > 0, `every input received packets: ${what}`);
      assert.equal(input.packets_dropped, 0, `the recorder dropped nothing: ${what}`);
    }
    assert.equal(measured.payloadTypeDrops, 0, `no packet dropped for its payload type: ${what}`);

    assertClean();
  } catch (e) {
    await dumpDiagnostics();
    throw e;
  } finally {
    if (relay) relay.close();
    await rm(tmp, { recursive: true, force: true });
  }
});
