// End-to-end test of recording from the call UI: the host records the room for 15 s from the
// toolbar; both pages show the indicator and then the finished recording with a download link.
// The link carries no token: clicking it mints a signed URL, which the browser downloads from;
// ffprobe checks the file (VP8 + Opus WebM, 720p, of the right duration). Then the host starts
// a second recording and discards it: both pages list it as cancelled.
//
//   cd tests/browser && npm ci && node --test record.test.mjs
//
// Environment: see harness.mjs; also FFPROBE (default ffprobe on PATH).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assertClean, dumpDiagnostics, openPage, phase, setup, sleep, teardown, waitForRemoteVideo } from './harness.mjs';

const FFPROBE = process.env.FFPROBE || 'ffprobe';
const RECORD_MS = 15_000;

function ffprobe(file) {
  return new Promise((resolve, reject) => {
    const args = ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file];
    execFile(FFPROBE, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ffprobe failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

/** The indicator's elapsed time in seconds. */
async function elapsed(page) {
  const [mm, ss] = (await page.textContent('#recording-elapsed', { timeout: 2000 })).split(':').map(Number);
  return mm * 60 + ss;
}

/** Status and error of the newest recording `page` knows, for assertion messages. */
async function newestRecording(page) {
  const r = await page.evaluate(() => window.capstan.state().recordings[0]);
  return JSON.stringify(r && { status: r.status, error: r.error });
}

const completedLink = '#recordings-panel [data-recording-id][data-status="completed"] a.download';

before(setup, { timeout: 60_000 });
after(teardown, { timeout: 20_000 });

test('the host records the call; everyone sees it and can download a playable WebM; a discarded one keeps nothing', { timeout: 100_000 }, async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'capstan-record-'));
  try {
    const host = await openPage('host', '/room/rec?name=Host&host=1');
    const guest = await openPage('guest', '/room/rec?name=Guest');
    await Promise.all([waitForRemoteVideo(host, 'Guest'), waitForRemoteVideo(guest, 'Host')]);
    phase('both pages see each other');

    // Only the host has controls; nothing is recorded yet.
    assert.equal(await host.isVisible('#record-controls'), true, 'host sees the record controls');
    assert.equal(await guest.isVisible('#record-controls'), false, 'a participant has no record controls');
    for (const page of [host, guest]) {
      assert.equal(await page.isVisible('#recording-indicator'), false, 'no indicator before recording');
      assert.equal(await page.locator('#recordings-panel [data-recording-id]').count(), 0, 'no recordings yet');
    }

    await host.selectOption('#rec-format', 'webm', { timeout: 5000 });
    await host.selectOption('#rec-quality', 'medium', { timeout: 5000 });
    await host.selectOption('#rec-layout', 'grid', { timeout: 5000 });
    await host.click('#rec-start', { timeout: 5000 });
    await Promise.all(
      [host, guest].map((page) => page.waitForSelector('#recording-indicator', { state: 'visible', timeout: 10_000 })),
    );
    const recordingSince = Date.now();
    phase('recording; both indicators visible');
    assert.equal(await host.textContent('#recording-label'), 'REC');
    assert.equal(await host.isEnabled('#rec-pause'), true, 'Pause is enabled while recording');
    assert.equal(await host.isEnabled('#rec-resume'), false, 'Resume is disabled while recording');
    assert.equal(await host.isEnabled('#rec-start'), false, 'Record is disabled while recording');

    // The elapsed time ticks on both pages.
    const first = await Promise.all([elapsed(host), elapsed(guest)]);
    await sleep(2500);
    const second = await Promise.all([elapsed(host), elapsed(guest)]);
    for (const [i, name] of ['host', 'guest'].entries()) {
      const why = `${name}: elapsed went from ${first[i]} s to ${second[i]} s over 2.5 s; recording ${await newestRecording(host)}`;
      assert.ok(second[i] - first[i] >= 2, why);
    }

    await sleep(Math.max(0, recordingSince + RECORD_MS - Date.now()));
    await host.click('#rec-stop', { timeout: 5000 });
    phase('stop clicked');
    await Promise.all(
      [host, guest].map((page) => page.waitForSelector('#recording-indicator', { state: 'hidden', timeout: 10_000 })),
    );
    await Promise.all([host, guest].map((page) => page.waitForSelector(completedLink, { timeout: 30_000 })));
    phase('completed recording listed on both pages');

    // One recording, the same on both pages, with one file (composite).
    const ids = await Promise.all(
      [host, guest].map((page) =>
        page.$$eval('#recordings-panel [data-recording-id]', (items) => items.map((li) => li.dataset.recordingId)),
      ),
    );
    assert.equal(ids[0].length, 1, `host lists ${JSON.stringify(ids[0])}`);
    assert.deepEqual(ids[1], ids[0], 'both pages list the same recording');
    assert.equal(await guest.locator(completedLink).count(), 1, 'one download link');

    // The participant's link carries no token; clicking it mints a signed URL, and the browser
    // downloads from that a WebM with VP8 video and Opus audio lasting ~15 s.
    const href = await guest.$eval(completedLink, (a) => a.href);
    assert.doesNotMatch(href, /token=|eyJ/, 'the download link carries no token');
    const [download] = await Promise.all([
      guest.waitForEvent('download', { timeout: 15_000 }),
      guest.click(completedLink, { timeout: 5000 }),
    ]);
    const followed = download.url();
    assert.doesNotMatch(followed, /token=|eyJ/, 'the followed URL carries no token');
    assert.match(followed, /\/download\?file=0&expires=\d+&sig=[0-9a-f]{64}$/, `a signed URL: ${followed}`);
    assert.equal(await download.failure(), null, `download of ${followed}`);
    const file = path.join(tmp, 'recording.webm');
    await download.saveAs(file);
    const probe = await ffprobe(file);
    phase('downloaded and probed');
    const what = JSON.stringify({ format: probe.format, streams: probe.streams.map((s) => [s.codec_type, s.codec_name, s.duration]) });
    assert.ok(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'vp8'), `no VP8 video: ${what}`);
    assert.ok(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'opus'), `no Opus audio: ${what}`);
    const duration = Number(probe.format.duration);
    assert.ok(Math.abs(duration - RECORD_MS / 1000) <= 2, `duration ${duration} s is not 15 s ± 2: ${what}`);
    const video = probe.streams.find((s) => s.codec_type === 'video');
    assert.deepEqual([video.width, video.height], [1280, 720], `720p chosen: ${what}`);

    // A second recording, discarded: nothing is kept and both pages say so.
    await host.selectOption('#rec-quality', 'low', { timeout: 5000 });
    await host.click('#rec-start', { timeout: 5000 });
    await Promise.all(
      [host, guest].map((page) => page.waitForSelector('#recording-indicator', { state: 'visible', timeout: 10_000 })),
    );
    assert.equal(await host.isEnabled('#rec-cancel'), true, 'Discard is enabled while recording');
    await sleep(2000);
    host.once('dialog', (dialog) => dialog.accept());
    await host.click('#rec-cancel', { timeout: 5000 });
    phase('discard clicked');
    await Promise.all(
      [host, guest].map((page) => page.waitForSelector('#recording-indicator', { state: 'hidden', timeout: 10_000 })),
    );
    const cancelled = '#recordings-panel [data-recording-id][data-status="cancelled"]';
    await Promise.all([host, guest].map((page) => page.waitForSelector(cancelled, { timeout: 10_000 })));
    for (const page of [host, guest]) {
      assert.equal(await page.locator(`${cancelled} a.download`).count(), 0, 'a discarded recording has no download');
      assert.equal(await page.locator(completedLink).count(), 1, 'the first recording is still listed');
    }
    assert.equal(await host.isEnabled('#rec-start'), true, 'Record is enabled again');

    await sleep(500);
    assertClean();
  } catch (e) {
    await dumpDiagnostics();
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
