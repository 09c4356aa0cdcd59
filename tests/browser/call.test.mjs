// End-to-end test of the call UI: a real `capstan serve --dev` and headless Debian Chromium
// (fake camera and microphone) joining one room from two pages through signaling/web/.
//
//   cd tests/browser && npm ci && npm test
//
// Environment: see harness.mjs; also
//   CAPSTAN_SCREENSHOT where to save page a's screenshot on success (default /tmp/capstan-room.png)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { assertClean, dumpDiagnostics, openPage, setup, sleep, teardown, waitForRemoteVideo } from './harness.mjs';

const SCREENSHOT = process.env.CAPSTAN_SCREENSHOT || '/tmp/capstan-room.png';

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

before(setup, { timeout: 60_000 });
after(teardown, { timeout: 20_000 });

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
    assertClean();

    await writeFile(SCREENSHOT, shot);
  } catch (e) {
    await dumpDiagnostics();
    throw e;
  }
});

test('the lobby and a bare room link ask for a name with the one join form', { timeout: 30_000 }, async () => {
  try {
    const lobby = await openPage('lobby', '/');
    assert.equal(await lobby.textContent('#join-title'), 'a call');
    await lobby.fill('#join-room', 'side', { timeout: 5000 });
    await lobby.fill('#join-name', 'Ada', { timeout: 5000 });
    await lobby.click('#join-form button[type=submit]', { timeout: 5000 });
    await lobby.waitForURL(/\/room\/side\?name=Ada$/, { timeout: 10_000 });

    const bare = await openPage('bare', '/room/side');
    await bare.waitForSelector('#join-form', { state: 'visible', timeout: 10_000 });
    assert.equal(await bare.textContent('#join-title'), 'side', 'the form names the room');
    assert.equal(await bare.isVisible('#join-room-field'), false, 'the room is not asked again');
    await bare.fill('#join-name', 'Bo', { timeout: 5000 });
    await bare.click('#join-form button[type=submit]', { timeout: 5000 });
    await bare.waitForURL(/\/room\/side\?name=Bo$/, { timeout: 10_000 });
    await waitForRemoteVideo(bare, 'Ada');
    assertClean();
  } catch (e) {
    await dumpDiagnostics();
    throw e;
  }
});
