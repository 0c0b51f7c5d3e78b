// What the upload panel and the details dialog show beyond the happy path: a picture's
// preview, no preview for SVG (script could run from this origin), and the server's reason
// when it refuses an upload, for a plain and for a resumable one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { startCoffer, launch, context, signIn, bytesOf, PASSWORD } from './harness.js';

const MiB = 1024 * 1024;

function png(width, height) {
  const image = new PNG({ width, height });
  for (let i = 0; i < width * height; i += 1) image.data.set([200, 30, 30, 255], i * 4);
  return PNG.sync.write(image);
}

test('a PNG gets a picture preview of its own size; an SVG gets none', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  await coffer.upload(token, 'dot.png', png(7, 5));
  await coffer.upload(token, 'logo.svg', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);

  await page.getByRole('button', { name: 'Details dot.png' }).click();
  const picture = page.getByRole('dialog', { name: 'dot.png' }).getByRole('img', { name: 'Preview of dot.png' });
  await picture.waitFor();
  await page.waitForFunction(() => {
    const img = document.querySelector('img.preview');
    return img && img.complete && img.naturalWidth > 0;
  });
  assert.deepEqual(await picture.evaluate((img) => [img.naturalWidth, img.naturalHeight, img.src.startsWith('blob:')]), [7, 5, true]);
  await page.getByRole('button', { name: 'Close' }).click();

  await page.getByRole('button', { name: 'Details logo.svg' }).click();
  const details = page.getByRole('dialog', { name: 'logo.svg' });
  await details.getByRole('button', { name: 'Close' }).waitFor();
  // The details are there (the hash), and no preview of any kind.
  const svg = (await coffer.list(token)).files.find((file) => file.name === 'logo.svg');
  await details.getByText(svg.sha256).waitFor();
  assert.equal(await details.locator('.preview').count(), 0, 'no preview for SVG');
  assertClean();
});

test('an upload over the quota shows the server\'s reason, plain and resumable, and stores nothing', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const erin = await coffer.createUser(token, 'erin');
  const set = await coffer.request('PATCH', `/api/v1/users/${erin.id}`, { token, body: { quota_bytes: 2 * MiB } });
  assert.equal(set.status, 200, set.body.toString());
  const browser = await launch(t);
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer, 'erin', PASSWORD);

  await page.getByLabel('Upload files').setInputFiles([
    { name: 'small-but-too-big.bin', mimeType: 'application/octet-stream', buffer: bytesOf(3 * MiB, 1) },
    { name: 'big-resumable.bin', mimeType: 'application/octet-stream', buffer: bytesOf(5 * MiB, 2) },
  ]);
  for (const name of ['small-but-too-big.bin', 'big-resumable.bin']) {
    const row = page.getByRole('listitem').filter({ hasText: name });
    await row.getByText('Failed: this upload would exceed your storage quota').waitFor();
    await row.getByRole('button', { name: `Retry ${name}` }).waitFor();
  }
  const erinToken = await coffer.token('erin', PASSWORD);
  assert.deepEqual((await coffer.list(erinToken)).files, [], 'nothing stored');
  // Chromium logs each refused request; the page handled both, and nothing else went wrong.
  assert.deepEqual(problems, Array(2).fill('Failed to load resource: the server responded with a status of 507 ()'));
});
