// Big files go up resumably (tus): through a network that goes away and comes back, across a
// page reload, and from another tus client, tus-js-client, against the same server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Upload, DefaultHttpStack } from 'tus-js-client';
import { startCoffer, launch, context, signIn, throttle, bytesOf, sha256, progressAbove } from './harness.js';

const MiB = 1024 * 1024;

// The Upload-Offset of every PATCH the page sends.
function patchOffsets(page) {
  const offsets = [];
  page.on('request', (request) => {
    if (request.method() === 'PATCH' && request.url().includes('/api/v1/uploads/')) {
      offsets.push(Number(request.headers()['upload-offset']));
    }
  });
  return offsets;
}

async function stored(coffer, name) {
  const token = await coffer.token();
  return (await coffer.list(token)).files.find((file) => file.name === name);
}

test('a throttled upload with the network switched off and on again completes byte for byte', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  const offsets = patchOffsets(page);
  const cdp = await throttle(page, 2 * MiB);
  // More than one PATCH's worth (16 MiB). Chromium lets the request it was slowing finish when
  // the network goes off; the next one fails, and the app must wait and continue.
  const bytes = bytesOf(20 * MiB, 21);
  await page.getByLabel('Upload files').setInputFiles({ name: 'trip.bin', mimeType: 'application/octet-stream', buffer: bytes });
  await progressAbove(page, 'trip.bin', 1.5 * MiB);

  await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const row = page.getByRole('listitem').filter({ hasText: 'trip.bin' });
  await row.getByText('Connection lost; continuing when the network is back…').waitFor();
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 4 * MiB });
  await row.getByText('Uploaded').waitFor({ timeout: 30_000 });

  const file = await stored(coffer, 'trip.bin');
  assert.equal(file.sha256, sha256(bytes), 'stored whole');
  assert.equal(file.size, bytes.length);
  assert.equal(offsets[0], 0, 'the first PATCH starts at 0');
  assert.ok(offsets.length >= 3 && offsets.slice(1).every((offset) => offset > MiB),
    `a PATCH failed offline, then one continued from the server's offset: ${offsets}`);
  // The dropped request is the only console error: Chromium logs the failed load.
  assert.ok(problems.every((text) => /ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(text)), problems.join('\n'));
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'a finished upload leaves nothing in storage');
});

test('after a reload, picking the same file again continues the upload where it stopped', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  const offsets = patchOffsets(page);
  const cdp = await throttle(page, 1 * MiB);
  const bytes = bytesOf(6 * MiB, 22);
  // A file on disk, so picking it again gives the same file (name, size and date).
  const dir = mkdtempSync(join(tmpdir(), 'coffer-pick-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'reload.bin');
  writeFileSync(file, bytes);
  await page.getByLabel('Upload files').setInputFiles(file);
  await progressAbove(page, 'reload.bin', 1.5 * MiB);

  // Leaving the page with an upload running asks first; the person says leave.
  const asked = new Promise((done) => page.once('dialog', (dialog) => { done(dialog.type()); dialog.accept(); }));
  await page.reload();
  assert.equal(await asked, 'beforeunload');
  await page.getByRole('heading', { name: 'My files', level: 1 }).waitFor();
  const token = await coffer.token();
  assert.deepEqual((await coffer.list(token)).files, [], 'nothing is a file yet');

  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.getByLabel('Upload files').setInputFiles(file);
  await page.getByRole('listitem').filter({ hasText: 'reload.bin' }).getByText('Uploaded').waitFor({ timeout: 30_000 });
  const kept = await stored(coffer, 'reload.bin');
  assert.equal(kept.sha256, sha256(bytes), 'stored whole');
  assert.equal(offsets[0], 0);
  // (The server may still be closing the cut request when the page asks again: 423, wait, retry.)
  assert.ok(offsets.length >= 2 && offsets.slice(1).every((offset) => offset > MiB),
    `after the reload PATCH continues from the server's offset: ${offsets}`);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'a finished upload leaves nothing in storage');
  assertClean();
});

test('tus-js-client uploads in chunks, is stopped, and resumes from the offset the server reports', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const bytes = bytesOf(5 * MiB + 123, 23);
  const options = {
    endpoint: `${coffer.url}/api/v1/uploads`,
    chunkSize: MiB,
    retryDelays: [],
    headers: { Authorization: `Bearer ${token}` },
    metadata: { name: 'from-tus-js.bin' },
    storeFingerprintForResuming: false,
    // tus-js-client's Node stack passes these to https.request: trust the test certificate.
    httpStack: new DefaultHttpStack({ agent: coffer.agent }),
  };

  // First run: stop after the second chunk is acknowledged.
  const first = new Upload(bytes, { ...options });
  const url = await new Promise((done, fail) => {
    first.options.onChunkComplete = (_size, accepted) => {
      if (accepted >= 2 * MiB) first.abort().then(() => done(first.url), fail);
    };
    first.options.onError = fail;
    first.options.onSuccess = () => fail(new Error('finished before it was stopped'));
    first.start();
  });
  const head = await coffer.request('HEAD', url.replace(coffer.url, ''), { token, headers: { 'tus-resumable': '1.0.0' } });
  const offset = Number(head.headers['upload-offset']);
  assert.ok(offset >= 2 * MiB && offset < bytes.length, `durable offset ${offset}`);

  // Second run: a new client given the upload URL asks HEAD and sends only the rest.
  let resumedFrom = null;
  await new Promise((done, fail) => {
    const second = new Upload(bytes, {
      ...options,
      // The server may still be closing the stopped request: tus-js-client retries a 423.
      retryDelays: [100, 200, 400, 800, 1600, 3200],
      uploadUrl: url,
      onProgress: (sent) => { if (resumedFrom === null) resumedFrom = sent; },
      onError: fail,
      onSuccess: done,
    });
    second.start();
  });
  assert.ok(resumedFrom >= offset, `resumed at ${resumedFrom}, server had ${offset}`);
  const file = (await coffer.list(token)).files.find((f) => f.name === 'from-tus-js.bin');
  assert.equal(file.sha256, sha256(bytes), 'stored whole');
  const done = await coffer.request('HEAD', url.replace(coffer.url, ''), { token, headers: { 'tus-resumable': '1.0.0' } });
  assert.equal(Number(done.headers['upload-offset']), bytes.length, 'HEAD on the finished upload: complete');
  assert.equal(done.headers['coffer-file-id'], file.id, 'and which file it became');
});
