// Upload links: a stranger on a phone opens /u/{token}, picks two files and uploads them with
// progress; the owner finds both in the folder, byte for byte. No console error, no CSP violation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCoffer, launch, context, signIn, sha256, bytesOf } from './harness.js';

test('an upload link takes two files from a phone-sized page, each with progress, into the folder', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const folder = await coffer.request('POST', '/api/v1/folders', { token, body: { path: 'scans' } });
  assert.equal(folder.status, 201, folder.body.toString());
  const made = await coffer.request('POST', '/api/v1/upload-links', {
    token,
    body: { folder: 'scans', max_files: 5, max_total_bytes: 10_000_000, note: 'Your scans, please' },
  });
  assert.equal(made.status, 201, made.body.toString());

  const browser = await launch(t);
  const phone = await context(browser, { viewport: { width: 390, height: 800 }, isMobile: true, hasTouch: true });
  const page = await phone.ctx.newPage();
  const answer = await page.goto(made.json.url);
  assert.equal(answer.status(), 200);
  await page.getByRole('heading', { name: 'Upload files' }).waitFor();
  await page.getByText('Your scans, please').waitFor();
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
  assert.ok(fits, 'no sideways scrolling on a phone');

  const first = bytesOf(300_000, 7);
  const second = bytesOf(120_000, 8);
  await page.getByLabel('Files to upload').setInputFiles([
    { name: 'page one.pdf', mimeType: 'application/pdf', buffer: first },
    { name: 'page two.pdf', mimeType: 'application/pdf', buffer: second },
  ]);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  const rows = page.locator('#upload-progress li[data-state="done"]');
  await rows.nth(1).waitFor();
  assert.equal(await rows.count(), 2);
  for (const name of ['page one.pdf', 'page two.pdf']) {
    await page.locator('#upload-progress li', { hasText: name }).getByText('Uploaded').waitFor();
  }

  const bars = await page.locator('#upload-progress li progress').evaluateAll((all) => all.map((bar) => bar.value === bar.max));
  assert.deepEqual(bars, [true, true], 'each file has a full progress bar');

  const listing = await coffer.list(token, 'scans');
  const stored = Object.fromEntries(listing.files.map((file) => [file.name, file]));
  assert.deepEqual(Object.keys(stored).sort(), ['page one.pdf', 'page two.pdf']);
  for (const [name, bytes] of [['page one.pdf', first], ['page two.pdf', second]]) {
    const content = await coffer.request('GET', `/api/v1/files/${stored[name].id}/content`, { token });
    assert.equal(sha256(content.body), sha256(bytes), `${name}: the same bytes`);
  }
  phone.assertClean();
});

test('the owner makes, edits, disables and revokes an upload link for a folder in the web app', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const made = await coffer.request('POST', '/api/v1/folders', { token, body: { path: 'inbox' } });
  assert.equal(made.status, 201);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('link', { name: 'inbox', exact: true }).click();
  await page.getByRole('heading', { name: 'inbox', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Upload links' }).click();
  const dialog = page.getByRole('dialog', { name: 'Upload links for inbox' });
  await dialog.getByText('No upload links for this folder yet.').waitFor();
  await dialog.getByLabel('Most files').fill('2');
  await dialog.getByLabel('Note shown to uploaders (optional)').fill('Receipts for March');
  await dialog.getByRole('button', { name: 'Create upload link' }).click();
  await dialog.getByText(/Active · 0 of 2 files/).waitFor();
  const url = await dialog.getByRole('textbox', { name: /^Link of the upload link/ }).inputValue();
  assert.match(url, new RegExp(`^${coffer.url}/u/[A-Za-z0-9_-]+$`));

  await dialog.getByRole('button', { name: /^Edit the upload link/ }).click();
  await dialog.getByLabel('Most files').fill('3');
  await dialog.getByRole('button', { name: 'Save upload link' }).click();
  await dialog.getByText(/Active · 0 of 3 files/).waitFor();
  await dialog.getByRole('button', { name: /^Disable the upload link/ }).click();
  await dialog.getByText(/Disabled · 0 of 3 files/).waitFor();
  assert.equal((await coffer.request('GET', new URL(url).pathname)).status, 404, 'a disabled link is 404');

  await dialog.getByRole('button', { name: /^Revoke the upload link/ }).click();
  await page.getByRole('dialog', { name: 'Revoke the upload link' }).getByRole('button', { name: 'Revoke' }).click();
  await dialog.getByText('No upload links for this folder yet.').waitFor();
  const listing = await coffer.request('GET', '/api/v1/upload-links', { token });
  assert.deepEqual(listing.json.upload_links, []);
  assertClean();
});
