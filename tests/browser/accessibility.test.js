// Scenario 12: axe-core (WCAG 2.2 A and AA rules) finds nothing on the app's main views, and
// dialogs keep focus inside, close with Esc and give focus back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startCoffer, launch, context, signIn, throttle, bytesOf } from './harness.js';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

// Runs axe in the page (injected by evaluate: the CSP allows no added script tags).
async function violations(page) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  return page.evaluate((tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } })
    .then((result) => result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)), TAGS);
}

test('12. no WCAG 2.2 A/AA violations on sign-in, files, uploads, share dialog, My shares, account and admin users; dialogs keep and return focus', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const file = await coffer.upload(token, 'quarterly report.pdf', bytesOf(20_000, 2));
  await coffer.upload(token, 'notes.txt', 'plain text notes', 'projects');
  await coffer.request('POST', '/api/v1/shares', { token, body: { file_id: file.id, expires_in: 86400, max_downloads: 5 } });
  const browser = await launch(t);
  for (const colorScheme of ['light', 'dark']) {
    const { ctx, assertClean } = await context(browser, { colorScheme });
    const page = await ctx.newPage();
    const check = async (view) => assert.deepEqual(await violations(page), [], `${view} (${colorScheme})`);
    await page.goto(`${coffer.url}/app/signin`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await check('sign-in');
    await signIn(page, coffer);
    await page.getByRole('link', { name: 'quarterly report.pdf' }).waitFor();
    await check('files');

    const cdp = await throttle(page, 1024 * 1024);
    await page.getByLabel('Upload files').setInputFiles({ name: 'slow.bin', mimeType: 'application/octet-stream', buffer: bytesOf(6 * 1024 * 1024, 9) });
    await page.getByRole('listitem').filter({ hasText: 'slow.bin' }).getByText(/% ·/).waitFor();
    await check('upload panel while uploading');
    await page.getByRole('button', { name: 'Cancel slow.bin' }).click();
    await cdp.detach();

    // The share dialog: focus inside, kept inside, Esc closes, focus back on its button.
    const opener = page.getByRole('button', { name: 'Share quarterly report.pdf' });
    await opener.click();
    const dialog = page.getByRole('dialog', { name: 'Share quarterly report.pdf' });
    await dialog.waitFor();
    await check('share dialog');
    for (let i = 0; i < 12; i += 1) {
      await page.keyboard.press('Tab');
      assert.ok(await page.evaluate(() => Boolean(document.activeElement.closest('dialog'))), `focus stays in the dialog (tab ${i})`);
    }
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Share quarterly report.pdf', 'focus returned');

    await page.getByRole('link', { name: 'My shares' }).click();
    await page.getByRole('cell', { name: '0 / 5' }).waitFor();
    await check('My shares');
    await page.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('cell', { name: 'This browser' }).waitFor();
    await check('account');
    await page.getByRole('link', { name: 'Admin', exact: true }).click();
    await page.getByRole('rowheader', { name: 'admin' }).waitFor();
    await check('admin users');
    assertClean();
    await ctx.close();
  }
});
