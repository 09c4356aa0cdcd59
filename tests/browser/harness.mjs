// Shared by the browser tests and scripts/capture-fixtures.mjs: a real `capstan serve --dev`
// and headless Debian Chromium (fake camera and microphone) opening pages of signaling/web/.
//
// Environment:
//   CAPSTAN_BIN       server binary (default ../../target/debug/capstan, relative to this folder)
//   CHROMIUM_PATH     browser binary (default /usr/bin/chromium; never downloaded)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, process.env.CAPSTAN_BIN || '../../target/debug/capstan');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
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
/** Server log lines that mean media was silently dropped, a task died, or GLib/GStreamer caught a programming error. */
const BAD_LOG_LINE = /Failed to send RTP|panicked|-CRITICAL \*\*/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A sleep that does not keep node alive (for the losing side of a race). */
const idle = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** Runs `fn` and rejects if it takes longer than `ms`. */
export async function within(ms, what, fn) {
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

/** The server and browser of this test file. */
export const env = {
  base: null, // http://127.0.0.1:PORT
  dataDir: null,
  server: null, // child process
  serverLog: '', // stderr + stdout of the server
  serverExit: null,
  browser: null,
  pages: {}, // name → { context, page, console: [], errors: [] }
};

const t0 = Date.now();
export const phase = (what) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);

async function startServer() {
  const port = await freePort();
  env.dataDir = await mkdtemp(path.join(os.tmpdir(), 'capstan-browser-'));
  env.base = `http://127.0.0.1:${port}`;
  const server = spawn(BIN, ['serve', '--dev'], {
    cwd: env.dataDir, // no stray capstan.toml
    env: {
      ...process.env,
      CAPSTAN_HTTP_ADDR: `127.0.0.1:${port}`,
      CAPSTAN_DATA_DIR: env.dataDir,
      CAPSTAN_RTC_BIND_IPS: '127.0.0.1',
      CAPSTAN_UI_TEST_HOOKS: 'true', // pages expose window.capstan to the tests
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  env.server = server;
  server.stderr.setEncoding('utf8').on('data', (d) => (env.serverLog += d));
  server.stdout.setEncoding('utf8').on('data', (d) => (env.serverLog += d));
  const exited = new Promise((resolve) =>
    server.on('exit', (code, signal) => {
      env.serverExit = { code, signal };
      resolve();
    }),
  );
  server.on('error', (e) => {
    env.serverExit = { error: e.message };
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (env.serverExit) throw new Error(`capstan exited early (${JSON.stringify(env.serverExit)}; binary ${BIN}):\n${env.serverLog}`);
    if ((await httpStatus(`${env.base}/healthz`)) === 200) return;
    await Promise.race([idle(100), exited]);
  }
  throw new Error(`capstan did not answer GET /healthz with 200 within 30 s:\n${env.serverLog}`);
}

async function stopServer() {
  const { server } = env;
  if (!server || env.serverExit) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), idle(5000).then(() => false)]);
  if (!done) {
    server.kill('SIGKILL');
    await Promise.race([exited, idle(2000)]);
  }
}

/** `before` hook: starts the server, then Chromium. */
export async function setup() {
  await startServer();
  phase(`server up at ${env.base}`);
  env.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  phase(`chromium ${env.browser.version()} launched`);
}

/** `after` hook: closes the browser, stops the server, removes its data; checks the server log. */
export async function teardown() {
  for (const { context } of Object.values(env.pages)) await context.close().catch(() => {});
  if (env.browser) await env.browser.close().catch(() => {});
  phase('browser closed');
  await stopServer();
  phase(`server stopped (${JSON.stringify(env.serverExit)})`);
  if (env.dataDir) await rm(env.dataDir, { recursive: true, force: true });
  // Also catch what happened after the test's own check, e.g. a panic during shutdown.
  assert.deepEqual(badLogLines(), [], 'server log has lines matching /Failed to send RTP|panicked/');
}

/** Server log lines that mean media was dropped or a task panicked. */
export const badLogLines = () => env.serverLog.split('\n').filter((l) => BAD_LOG_LINE.test(l));

/** Opens `urlPath` of the server in a fresh browser context, recording its console. */
export async function openPage(name, urlPath) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const entry = { context, page, console: [], errors: [] };
  page.on('console', (m) => entry.console.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => entry.errors.push(String(e && e.stack ? e.stack : e)));
  env.pages[name] = entry;
  await page.goto(`${env.base}${urlPath}`, { timeout: 15_000 });
  return page;
}

/** Waits until `page` shows a remote tile for `name` whose <video> has decoded a frame. */
export async function waitForRemoteVideo(page, name) {
  await page.waitForFunction(
    (n) => {
      const v = document.querySelector(`.tile.remote[data-name="${n}"] video`);
      return !!v && v.videoWidth > 0 && v.readyState >= 2;
    },
    name,
    { timeout: 30_000, polling: 100 },
  );
}

/** Asserts: no uncaught exceptions or console errors in any page; the server ran cleanly. */
export function assertClean() {
  for (const [name, { errors, console: log }] of Object.entries(env.pages)) {
    assert.deepEqual(errors, [], `uncaught errors on page ${name}`);
    assert.deepEqual(log.filter((l) => l.startsWith('[error]')), [], `console errors on page ${name}`);
  }
  assert.deepEqual(badLogLines(), [], 'server log has lines matching /Failed to send RTP|panicked/');
  assert.equal(env.serverExit, null, `server exited during the test:\n${env.serverLog}`);
}

export async function dumpDiagnostics() {
  for (const [name, { page, console: log, errors }] of Object.entries(env.pages)) {
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
  console.error(`--- server log (exit: ${JSON.stringify(env.serverExit)})\n${env.serverLog.slice(-8000)}`);
}
