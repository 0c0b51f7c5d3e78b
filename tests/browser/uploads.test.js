// Scenarios 2, 3 and 10: uploads with progress, cancel, and an upload outliving the session's
// lifetime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startCoffer, launch, context, signIn, throttle, bytesOf, sha256, progressAbove } from './harness.js';

const MiB = 1024 * 1024;

test('2. a throttled 8 MiB upload shows rising progress and a speed; files by picker and by drop arrive byte for byte', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  const cdp = await throttle(page, 2 * MiB);
  const big = bytesOf(8 * MiB, 7);
  await page.getByLabel('Upload files').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: big });
  const seen = [];
  let value = 0;
  for (let i = 0; i < 3; i += 1) {
    value = await progressAbove(page, 'big.bin', value);
    seen.push(value);
  }
  assert.ok(seen[0] < seen[1] && seen[1] < seen[2] && seen[2] <= big.length, `rising: ${seen}`);
  const row = page.getByRole('listitem').filter({ hasText: 'big.bin' });
  await row.getByText(/\d+% · .+\/s · .+ left/).waitFor();
  await row.getByText('Uploaded').waitFor({ timeout: 20_000 });
  await page.getByRole('link', { name: 'big.bin' }).waitFor();
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  // Several files through the picker, and two by a real drop event.
  const picked = [1, 2, 3].map((n) => ({ name: `picked-${n}.txt`, mimeType: 'text/plain', buffer: bytesOf(1000 * n, n) }));
  await page.getByLabel('Upload files').setInputFiles(picked);
  const dropped = [['dropped-a.txt', 'first dropped file'], ['dropped-b.txt', 'second dropped file']];
  const transfer = await page.evaluateHandle((files) => {
    const data = new DataTransfer();
    for (const [name, text] of files) data.items.add(new File([text], name, { type: 'text/plain' }));
    return data;
  }, dropped);
  await page.getByRole('region', { name: 'Files' }).dispatchEvent('dragover', { dataTransfer: transfer });
  await page.getByRole('region', { name: 'Files' }).dispatchEvent('drop', { dataTransfer: transfer });
  await page.getByText('6 of 6 uploaded').waitFor();

  const token = await coffer.token();
  const listing = await coffer.list(token);
  const byName = Object.fromEntries(listing.files.map((file) => [file.name, file]));
  const expected = [['big.bin', big], ...picked.map((p) => [p.name, p.buffer]), ...dropped.map(([n, text]) => [n, Buffer.from(text)])];
  for (const [name, bytes] of expected) {
    assert.ok(byName[name], `${name} stored`);
    const content = await coffer.request('GET', `/api/v1/files/${byName[name].id}/content`, { token });
    assert.equal(sha256(content.body), sha256(bytes), `${name} byte for byte`);
  }
  assertClean();
});

test('3. cancelling a throttled upload says cancelled and leaves no file and no temp data', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await throttle(page, 2 * MiB);
  await page.getByLabel('Upload files').setInputFiles({ name: 'huge.bin', mimeType: 'application/octet-stream', buffer: bytesOf(16 * MiB, 3) });
  await progressAbove(page, 'huge.bin', 0);
  await page.getByRole('button', { name: 'Cancel huge.bin' }).click();
  const row = page.getByRole('listitem').filter({ hasText: 'huge.bin' });
  await row.getByText('Cancelled').waitFor();
  await row.getByRole('button', { name: 'Retry huge.bin' }).waitFor();
  const token = await coffer.token();
  assert.deepEqual((await coffer.list(token)).files, [], 'no file');
  // A file this big goes resumably: cancelling terminates the upload (DELETE), which removes
  // its part file; a plain upload's temp file goes when its request does. Wait for both.
  const leftovers = () => [
    ...readdirSync(join(coffer.state, 'tmp')).filter((name) => name.startsWith('upload-')),
    ...readdirSync(join(coffer.state, 'uploads')),
  ];
  const deadline = Date.now() + 10_000;
  while (leftovers().length && Date.now() < deadline) {
    await new Promise((done) => setImmediate(done));
  }
  assert.deepEqual(leftovers(), [], 'no temp data');
  assertClean();
});

test('10. an upload outlives the session lifetime that passes while it runs', async (t) => {
  const coffer = await startCoffer(t, '[auth]\naccess_token_ttl = "5s"\nrefresh_idle_timeout = "10s"\nrefresh_lifetime = "20s"\n');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await throttle(page, 2 * MiB);
  const bytes = bytesOf(6 * MiB, 11);
  await page.getByLabel('Upload files').setInputFiles({ name: 'long.bin', mimeType: 'application/octet-stream', buffer: bytes });
  await progressAbove(page, 'long.bin', 0);
  coffer.advanceClock(60); // past the idle timeout and the absolute lifetime
  const row = page.getByRole('listitem').filter({ hasText: 'long.bin' });
  await row.getByText('Uploaded').waitFor({ timeout: 20_000 });
  const token = await coffer.token();
  const file = (await coffer.list(token)).files.find((f) => f.name === 'long.bin');
  assert.equal(file.sha256, sha256(bytes), 'stored whole');
  // The session itself has ended: the list's reload after the upload asks to sign in again.
  await page.getByText('Your session ended. Please sign in again.').waitFor();
  assertClean();
});
