// End-to-end test of the call UI: a real `capstan serve --dev` and headless Debian Chromium
// (fake camera and microphone) joining one room from two pages through signaling/web/.
//
//   cd tests/browser && npm ci && npm test
//
// Environment:
//   CAPSTAN_BIN       server binary (default ../../target/debug/capstan, relative to this folder)
//   CHROMIUM_PATH     browser binary (default /usr/bin/chromium; never downloaded)
//   CAPSTAN_SCREENSHOT where to save page a's screenshot on success (default /tmp/capstan-room.png)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, process.env.CAPSTAN_BIN || '../../target/debug/capstan');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOT = process.env.CAPSTAN_SCREENSHOT || '/tmp/capstan-room.png';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];
/** Server log lines that mean media was silently dropped or a task died. */
const BAD_LOG_LINE = /Failed to send RTP|panicked/;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A sleep that does not keep node alive (for the losing side of a race). */
const idle = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** Runs `fn` and rejects if it takes longer than `ms`. */
async function within(ms, what, fn) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([fn(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Status of a GET without keep-alive (a pooled socket would keep node alive after the test). */
function httpStatus(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

let server; // child process
let serverLog = ''; // stderr + stdout of the server
let serverExit = null;
let dataDir;
let base;
let browser;
const pages = {}; // name → { context, page, console: [] }

async function startServer() {
  const port = await freePort();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'capstan-browser-'));
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--dev'], {
    cwd: dataDir, // no stray capstan.toml
    env: {
      ...process.env,
      CAPSTAN_HTTP_ADDR: `127.0.0.1:${port}`,
      CAPSTAN_DATA_DIR: dataDir,
      CAPSTAN_RTC_BIND_IPS: '127.0.0.1',
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr.setEncoding('utf8').on('data', (d) => (serverLog += d));
  server.stdout.setEncoding('utf8').on('data', (d) => (serverLog += d));
  const exited = new Promise((resolve) =>
    server.on('exit', (code, signal) => {
      serverExit = { code, signal };
      resolve();
    }),
  );
  server.on('error', (e) => {
    serverExit = { error: e.message };
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (serverExit) throw new Error(`capstan exited early (${JSON.stringify(serverExit)}; binary ${BIN}):\n${serverLog}`);
    if ((await httpStatus(`${base}/healthz`)) === 200) return;
    await Promise.race([idle(100), exited]);
  }
  throw new Error(`capstan did not answer GET /healthz with 200 within 30 s:\n${serverLog}`);
}

async function stopServer() {
  if (!server || serverExit) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), idle(5000).then(() => false)]);
  if (!done) {
    server.kill('SIGKILL');
    await Promise.race([exited, idle(2000)]);
  }
}

async function openPage(name, urlPath) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const entry = { context, page, console: [], errors: [] };
  page.on('console', (m) => entry.console.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => entry.errors.push(String(e && e.stack ? e.stack : e)));
  pages[name] = entry;
  await page.goto(`${base}${urlPath}`, { timeout: 15_000 });
  return page;
}

/** Waits until `page` shows a remote tile for `name` whose <video> has decoded a frame. */
async function waitForRemoteVideo(page, name) {
  await page.waitForFunction(
    (n) => {
      const v = document.querySelector(`.tile.remote[data-name="${n}"] video`);
      return !!v && v.videoWidth > 0 && v.readyState >= 2;
    },
    name,
    { timeout: 30_000, polling: 100 },
  );
}

/** The identity `page` knows the participant called `name` by. */
async function identityOf(page, name) {
  const state = await page.evaluate(() => window.capstan.state());
  const p = state.participants.find((x) => x.name === name);
  assert.ok(p, `page of ${state.me && state.me.name} does not list participant ${name}: ${JSON.stringify(state)}`);
  return p.identity;
}

/** Snapshot of the remote video element and inbound stats for `name`. */
async function sample(page, name, identity) {
  return page.evaluate(
    async ({ n, id }) => {
      const v = document.querySelector(`.tile.remote[data-name="${n}"] video`);
      const stats = (await window.capstan.stats())[id] || null;
      return {
        currentTime: v ? v.currentTime : -1,
        videoWidth: v ? v.videoWidth : 0,
        videoHeight: v ? v.videoHeight : 0,
        paused: v ? v.paused : true,
        stats,
      };
    },
    { n: name, id: identity },
  );
}

async function dumpDiagnostics() {
  for (const [name, { page, console: log, errors }] of Object.entries(pages)) {
    let state = null;
    let messages = null;
    try {
      state = await within(3000, 'state', () => page.evaluate(() => window.capstan && window.capstan.state()));
      messages = await within(3000, 'messages', () => page.evaluate(() => window.capstan && window.capstan.messages()));
    } catch (e) {
      state = `unavailable: ${e.message}`;
    }
    console.error(`--- page ${name}: state ${JSON.stringify(state)}`);
    console.error(`--- page ${name}: signaling ${JSON.stringify((messages || []).map((m) => `${m.dir}:${m.type}`))}`);
    console.error(`--- page ${name}: console\n${log.join('\n')}`);
    if (errors.length) console.error(`--- page ${name}: uncaught errors\n${errors.join('\n')}`);
  }
  console.error(`--- server log (exit: ${JSON.stringify(serverExit)})\n${serverLog.slice(-8000)}`);
}

const t0 = Date.now();
const phase = (what) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);

before(async () => {
  await startServer();
  phase(`server up at ${base}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  phase(`chromium ${browser.version()} launched`);
}, { timeout: 60_000 });

after(async () => {
  for (const { context } of Object.values(pages)) await context.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  phase('browser closed');
  await stopServer();
  phase(`server stopped (${JSON.stringify(serverExit)})`);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  // Also catch what happened after the test's own check, e.g. a panic during shutdown.
  const bad = serverLog.split('\n').filter((l) => BAD_LOG_LINE.test(l));
  assert.deepEqual(bad, [], 'server log has lines matching /Failed to send RTP|panicked/');
}, { timeout: 20_000 });

test('two browsers see and hear each other; a leave removes the tile', { timeout: 60_000 }, async () => {
  try {
    const a = await openPage('a', '/room/t?name=a&host=1');
    const b = await openPage('b', '/room/t?name=b');

    // Each shows the other's video.
    await Promise.all([waitForRemoteVideo(a, 'b'), waitForRemoteVideo(b, 'a')]);
    const bAtA = await identityOf(a, 'b');
    const aAtB = await identityOf(b, 'a');

    // ... playing (currentTime advances) with decoded frames and audio bytes arriving.
    const first = await Promise.all([sample(a, 'b', bAtA), sample(b, 'a', aAtB)]);
    await sleep(2000);
    const second = await Promise.all([sample(a, 'b', bAtA), sample(b, 'a', aAtB)]);
    for (const [i, [viewer, remote]] of [['a', 'b'], ['b', 'a']].entries()) {
      const s0 = first[i];
      const s1 = second[i];
      const what = `${viewer} watching ${remote}: ${JSON.stringify({ before: s0, after: s1 })}`;
      assert.ok(s1.videoWidth > 0, `no video size; ${what}`);
      assert.equal(s1.paused, false, `video paused; ${what}`);
      assert.ok(s1.currentTime - s0.currentTime > 1.0, `video currentTime did not advance over 2 s; ${what}`);
      assert.ok(s0.stats && s1.stats, `no inbound stats; ${what}`);
      assert.ok(s1.stats.videoFramesDecoded > s0.stats.videoFramesDecoded, `no new decoded frames; ${what}`);
      assert.ok(s1.stats.audioBytesReceived > s0.stats.audioBytesReceived, `inbound audio bytes did not increase; ${what}`);
    }

    // The UI says it is connected; each page lists both participants.
    for (const [name, page] of [['a', a], ['b', b]]) {
      const state = await page.evaluate(() => window.capstan.state());
      assert.equal(state.connection, 'connected', `${name}: ${JSON.stringify(state)}`);
      assert.equal(state.phase, 'joined');
      assert.equal(await page.locator('#participant-list li').count(), 2, `${name}: participant list`);
    }
    assert.equal((await a.evaluate(() => window.capstan.state())).host, true, 'a joined as host');
    assert.equal(await a.locator('#record-controls').count(), 1, 'reserved #record-controls exists');
    const shot = await a.screenshot({ timeout: 10_000 });

    // b mutes its microphone: a's tile and list show it (mute → participant_updated).
    await b.click('#mic-btn', { timeout: 5000 });
    await a.waitForSelector('.tile.remote[data-name="b"].mic-muted', { timeout: 5000 });
    assert.equal((await b.evaluate(() => window.capstan.state())).muted.audio, true, 'b is muted');

    // b leaves: its page ends the call, a's tile for b disappears.
    await b.click('#leave-btn', { timeout: 5000 });
    await b.waitForFunction(() => window.capstan.state().phase === 'ended', null, { timeout: 5000 });
    await a.waitForFunction(
      () => !document.querySelector('.tile.remote[data-name="b"]') && window.capstan.state().participants.length === 0,
      null,
      { timeout: 15_000, polling: 100 },
    );
    assert.equal(await a.locator('#participant-list li').count(), 1, 'a lists only itself');

    // No uncaught exceptions in the UI; nothing dropped or panicking on the server.
    await sleep(500);
    for (const [name, { errors, console: log }] of Object.entries(pages)) {
      assert.deepEqual(errors, [], `uncaught errors on page ${name}`);
      assert.deepEqual(log.filter((l) => l.startsWith('[error]')), [], `console errors on page ${name}`);
    }
    const bad = serverLog.split('\n').filter((l) => BAD_LOG_LINE.test(l));
    assert.deepEqual(bad, [], 'server log has lines matching /Failed to send RTP|panicked/');
    assert.equal(serverExit, null, `server exited during the test:\n${serverLog}`);

    await writeFile(SCREENSHOT, shot);
  } catch (e) {
    await dumpDiagnostics();
    throw e;
  }
});
