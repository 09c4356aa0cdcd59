// End-to-end test of "Save my own copy": the call UI records its own camera and microphone
// with MediaRecorder and uploads a chunk every 2 s through POST /video-calls/chunks/upload.
// The uploads are cut off for 5 s mid-way (the page retries with backoff), then the copy is
// stopped: the server has one client recording whose chunks are contiguous, lasting about the
// recorded time, that decodes cleanly. A second copy is cut short by a reload: the page
// finishes the upload it left behind.
//
//   cd tests/browser && npm ci && node --test upload.test.mjs
//
// Environment: see harness.mjs; also FFPROBE and FFMPEG (default: on PATH).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { badLogLines, dumpDiagnostics, env, openPage, phase, setup, sleep, teardown } from './harness.mjs';

const FFPROBE = process.env.FFPROBE || 'ffprobe';
const FFMPEG = process.env.FFMPEG || 'ffmpeg';

function run(bin, args) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** A dev token for `identity` in `room`. */
async function token(room, identity) {
  const r = await fetch(`${env.base}/api/dev/token?room=${room}&identity=${encodeURIComponent(identity)}`);
  return (await r.json()).token;
}

/** The status route's `data` for upload `id`. */
async function uploadStatus(id, bearer) {
  const r = await fetch(`${env.base}/video-calls/recording/${id}/status`, { headers: { Authorization: `Bearer ${bearer}` } });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body.data;
}

async function waitCompleted(id, bearer) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const data = await uploadStatus(id, bearer);
    if (data.state === 'completed' || data.state === 'failed') return data;
    assert.ok(Date.now() < deadline, `upload ${id} still ${data.state}: ${JSON.stringify(data)}`);
    await sleep(250);
  }
}

/** Downloads recording `id`, checks it with ffprobe and a silent ffmpeg decode; its duration. */
async function checkFile(id, bearer, tmp) {
  const r = await fetch(`${env.base}/api/webrtc/recordings/${id}/download`, { headers: { Authorization: `Bearer ${bearer}` } });
  assert.equal(r.status, 200);
  const file = path.join(tmp, `${id}.webm`);
  await writeFile(file, Buffer.from(await r.arrayBuffer()));
  const probe = JSON.parse((await run(FFPROBE, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file])).stdout);
  const codecs = probe.streams.map((s) => s.codec_name).sort();
  assert.deepEqual(codecs, ['opus', 'vp8'], JSON.stringify(probe.streams));
  // As pipelines/tests/common/check.rs decodes: the null muxer's own re-timing of a
  // variable-rate track is not an error of the file.
  const { stderr } = await run(FFMPEG, ['-nostdin', '-v', 'error', '-i', file, '-enc_time_base:v', '-1', '-f', 'null', '-']);
  assert.equal(stderr.trim(), '', `ffmpeg decoding ${file}`);
  return Number(probe.format.duration);
}

/** The upload's sequences are 0..final with nothing missing. */
function assertContiguous(data) {
  assert.deepEqual(data.missing, [], JSON.stringify(data));
  assert.equal(data.chunksReceived, data.finalSequence + 1, JSON.stringify(data));
  assert.equal(data.recording.source, 'client');
}

const ownCopy = (page) => page.evaluate(() => window.capstan.ownCopy());

/** The id of the copy being recorded, once the page has one. */
async function copyId(page) {
  const id = await page.waitForFunction(() => window.capstan.ownCopy().id, null, { timeout: 10_000, polling: 50 });
  return id.jsonValue();
}

/** No uncaught error or console error on the page but the outage's failed requests; a clean server. */
function assertCleanBut(outage) {
  for (const [name, { errors, console: log }] of Object.entries(env.pages)) {
    assert.deepEqual(errors, [], `uncaught errors on page ${name}`);
    const unexpected = log.filter((l) => l.startsWith('[error]') && !l.includes(outage));
    assert.deepEqual(unexpected, [], `console errors on page ${name}`);
  }
  assert.deepEqual(badLogLines(), [], 'server log has lines matching /Failed to send RTP|panicked/');
  assert.equal(env.serverExit, null, `server exited during the test:\n${env.serverLog}`);
}

before(setup, { timeout: 60_000 });
after(teardown, { timeout: 20_000 });

test('my own copy survives an upload outage and a reload, and lands as a client recording', { timeout: 150_000 }, async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'capstan-upload-'));
  try {
    // A token in the link, as an application hands it out: the identity survives the reload.
    const bearer = await token('own', 'me');
    const page = await openPage('me', `/room/own?token=${bearer}`);
    await page.waitForSelector('#own-copy:not([disabled])', { timeout: 30_000 });
    phase('joined');

    await page.check('#own-copy');
    const started = Date.now();
    const id = await copyId(page);
    assert.ok(id, 'a copy is being recorded');
    await sleep(5000);

    // The uploads fail for 5 s; the recorder goes on and the chunks wait.
    await page.route('**/video-calls/chunks/upload', (route) => route.abort('internetdisconnected'));
    phase('uploads cut off');
    await sleep(5000);
    await page.unroute('**/video-calls/chunks/upload');
    phase('uploads back');
    await sleep(4000);
    await page.uncheck('#own-copy');
    const recorded = (Date.now() - started) / 1000;
    phase(`stopped after ${recorded.toFixed(1)} s`);
    assert.ok((await ownCopy(page)).failures > 0, 'some chunk failed during the outage');

    const data = await waitCompleted(id, bearer);
    assert.equal(data.state, 'completed', JSON.stringify(data.recording));
    assertContiguous(data);
    const duration = await checkFile(id, bearer, tmp);
    assert.ok(Math.abs(duration - recorded) < 2.5, `duration ${duration} s for ${recorded} s recorded`);
    await page.waitForSelector(`#recordings-panel [data-recording-id="${id}"][data-status="completed"]`, { timeout: 10_000 });
    phase(`copy ${id}: ${data.chunksReceived} chunks, ${duration.toFixed(2)} s`);

    // A reload in the middle of a second copy: the new page finishes what the old one left.
    await page.check('#own-copy');
    const second = await copyId(page);
    await sleep(5000);
    await page.reload();
    await page.waitForSelector('#own-copy', { timeout: 30_000 });
    phase('reloaded');
    const again = await waitCompleted(second, bearer);
    assert.equal(again.state, 'completed', JSON.stringify(again.recording));
    assertContiguous(again);
    const secondDuration = await checkFile(second, bearer, tmp);
    assert.ok(secondDuration > 1.5 && secondDuration < 6, `second copy lasts ${secondDuration} s`);
    phase(`copy ${second} after the reload: ${again.chunksReceived} chunks, ${secondDuration.toFixed(2)} s`);

    assertCleanBut('net::ERR_INTERNET_DISCONNECTED');
  } catch (e) {
    await dumpDiagnostics();
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
