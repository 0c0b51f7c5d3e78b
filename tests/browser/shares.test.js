// Scenarios 5, 6 and 7: share links made, copied, used, limited, protected and revoked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startCoffer, launch, context, signIn, sha256, bytesOf } from './harness.js';

async function downloadFromLink(browser, link) {
  const visitor = await context(browser);
  const page = await visitor.ctx.newPage();
  await page.goto(link);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download' }).click()]);
  const bytes = readFileSync(await download.path());
  visitor.assertClean();
  await visitor.ctx.close();
  return bytes;
}

test('5. a link with a download limit of 1: Copy puts it on the clipboard, one visitor downloads, the next is refused', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const bytes = bytesOf(50_000, 5);
  await coffer.upload(token, 'report.pdf', bytes);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: coffer.url });
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('button', { name: 'Share report.pdf' }).click();
  const dialog = page.getByRole('dialog', { name: 'Share report.pdf' });
  await dialog.getByLabel('Expires').selectOption({ label: '1 day' });
  await dialog.getByLabel('Download limit (optional)').fill('1');
  await dialog.getByRole('button', { name: 'Create link' }).click();
  await dialog.getByRole('button', { name: 'Copy link to report.pdf' }).click();
  await dialog.getByRole('button', { name: 'Copy link to report.pdf' }).filter({ hasText: 'Copied' }).waitFor();
  const link = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(link, new RegExp(`^${coffer.url}/s/[A-Za-z0-9_-]+$`));
  assert.equal(await dialog.getByRole('textbox', { name: 'Link', exact: true }).inputValue(), link);

  assert.equal(sha256(await downloadFromLink(browser, link)), sha256(bytes), 'the same bytes');
  const late = await context(browser);
  const refused = await late.ctx.newPage();
  const answer = await refused.goto(link);
  assert.equal(answer.status(), 410);
  await refused.getByRole('heading', { name: 'Link no longer available' }).waitFor();
  late.assertClean();
  assertClean();
});

test('6. a password link: a wrong password is an error, the right one downloads, the bare download URL is refused', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  await coffer.upload(token, 'secret.txt', 'for your eyes only');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('button', { name: 'Share secret.txt' }).click();
  const dialog = page.getByRole('dialog', { name: 'Share secret.txt' });
  await dialog.getByLabel('Password (optional)').fill('open sesame 42');
  await dialog.getByRole('button', { name: 'Create link' }).click();
  const link = await dialog.getByRole('textbox', { name: 'Link', exact: true }).inputValue();
  assertClean();

  const visitor = await context(browser);
  const bare = await visitor.ctx.request.get(`${link}/download`, { maxRedirects: 0 });
  assert.equal(bare.status(), 401, 'no download without unlocking');
  assert.notEqual(await bare.text(), 'for your eyes only');
  const guest = await visitor.ctx.newPage();
  await guest.goto(link);
  await guest.getByRole('heading', { name: 'This file is protected' }).waitFor();
  await guest.getByLabel('Password').fill('wrong password');
  await guest.getByRole('button', { name: 'Unlock' }).click();
  await guest.locator('.problem').waitFor();
  await guest.getByLabel('Password').fill('open sesame 42');
  await guest.getByRole('button', { name: 'Unlock' }).click();
  const [download] = await Promise.all([guest.waitForEvent('download'), guest.getByRole('link', { name: 'Download' }).click()]);
  assert.equal(readFileSync(await download.path(), 'utf8'), 'for your eyes only');
  visitor.assertClean();
});

test('7. revoking from My shares: the count shown is the API\'s, and the link then says not available', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const file = await coffer.upload(token, 'slides.odp', 'slides');
  const made = await coffer.request('POST', '/api/v1/shares', { token, body: { file_id: file.id, expires_in: 3600, max_downloads: 3 } });
  assert.equal(made.status, 201);
  assert.equal((await coffer.request('GET', new URL(`${made.json.url}/download`).pathname)).status, 200);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('link', { name: 'My shares' }).click();
  const row = page.getByRole('row').filter({ hasText: 'slides.odp' });
  const counted = (await coffer.request('GET', `/api/v1/shares/${made.json.id}`, { token })).json.downloads;
  assert.equal(counted, 1);
  assert.equal(await row.locator('td.downloads').textContent(), `${counted} / 3`);
  await row.getByRole('button', { name: 'Revoke the link to slides.odp' }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke the link to slides.odp' });
  await confirm.getByRole('button', { name: 'Revoke' }).click();
  await page.getByText('You have no share links.').waitFor();

  const visitor = await context(browser);
  const guest = await visitor.ctx.newPage();
  assert.equal((await guest.goto(made.json.url)).status(), 404);
  await guest.getByRole('heading', { name: 'Link not found' }).waitFor();
  visitor.assertClean();
  assertClean();
});

test('8. several selected files and a folder shared from Files: the link lists each file, downloads one, and all as a ZIP', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  await coffer.upload(token, 'a.txt', 'first');
  await coffer.upload(token, 'b.txt', 'second');
  await coffer.upload(token, 'inner.txt', 'inside', 'photos');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('checkbox', { name: 'Select a.txt' }).check();
  await page.getByRole('checkbox', { name: 'Select b.txt' }).check();
  await page.getByRole('button', { name: 'Share selected' }).click();
  const dialog = page.getByRole('dialog', { name: 'Share 2 files' });
  await dialog.getByLabel('Download limit per file (optional)').fill('2');
  await dialog.getByRole('button', { name: 'Create link' }).click();
  const link = await dialog.getByRole('textbox', { name: 'Link', exact: true }).inputValue();
  await dialog.getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: 'Share photos' }).click();
  const folderDialog = page.getByRole('dialog', { name: 'Share photos' });
  await folderDialog.getByRole('button', { name: 'Create link' }).click();
  const folderLink = await folderDialog.getByRole('textbox', { name: 'Link', exact: true }).inputValue();
  assertClean();

  const visitor = await context(browser);
  const guest = await visitor.ctx.newPage();
  await guest.goto(link);
  await guest.getByRole('cell', { name: 'a.txt', exact: true }).waitFor();
  await guest.getByRole('cell', { name: 'b.txt', exact: true }).waitFor();
  const [zip] = await Promise.all([guest.waitForEvent('download'), guest.getByRole('link', { name: 'Download all (ZIP)' }).click()]);
  assert.equal(zip.suggestedFilename(), 'files.zip');
  assert.equal(readFileSync(await zip.path()).subarray(0, 4).toString('latin1'), 'PK\x03\x04');
  await guest.goto(folderLink);
  const [one] = await Promise.all([guest.waitForEvent('download'), guest.getByRole('link', { name: 'Download inner.txt' }).click()]);
  assert.equal(readFileSync(await one.path(), 'utf8'), 'inside');
  visitor.assertClean();
});
