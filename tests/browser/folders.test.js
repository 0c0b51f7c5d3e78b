// Scenario 4 (folders) and the first page of a folder of 10,000 files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoffer, launch, context, signIn } from './harness.js';

test('4. folders: make, upload into a/b, breadcrumb, Back, reload, rename by keyboard, delete after confirming', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);

  await page.getByRole('button', { name: 'New folder' }).click();
  await page.getByLabel('Folder name').fill('a');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('link', { name: 'a', exact: true }).click();
  await page.getByRole('heading', { name: 'a', level: 1 }).waitFor();
  assert.match(page.url(), /\/app\/files\/a$/);
  await page.getByText('This folder is empty.').waitFor();

  const local = mkdtempSync(join(tmpdir(), 'coffer-folder-'));
  t.after(() => rmSync(local, { recursive: true, force: true }));
  mkdirSync(join(local, 'b'));
  writeFileSync(join(local, 'b', 'inside.txt'), 'in a/b');
  await page.getByLabel('Upload a folder').setInputFiles(join(local, 'b'));
  await page.getByText('1 of 1 uploaded').waitFor();
  await page.getByRole('link', { name: 'b', exact: true }).click();
  await page.getByRole('link', { name: 'inside.txt' }).waitFor();
  assert.match(page.url(), /\/app\/files\/a\/b$/);

  const crumbs = page.getByRole('navigation', { name: 'Breadcrumb' });
  await crumbs.getByRole('link', { name: 'a', exact: true }).click();
  await page.getByRole('link', { name: 'b', exact: true }).waitFor();
  await page.goBack();
  await page.getByRole('link', { name: 'inside.txt' }).waitFor();
  await page.reload();
  await page.getByRole('link', { name: 'inside.txt' }).waitFor();
  await crumbs.getByRole('link', { name: 'My files' }).click();
  await page.getByRole('heading', { name: 'My files', level: 1 }).waitFor();

  // Rename `a` by keyboard alone: focus its link, F2, type, Enter.
  await page.getByRole('link', { name: 'a', exact: true }).focus();
  await page.keyboard.press('F2');
  const name = page.getByLabel('New name');
  await name.waitFor();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type('renamed');
  await page.keyboard.press('Enter');
  await page.getByRole('link', { name: 'renamed', exact: true }).waitFor();
  const token = await coffer.token();
  assert.deepEqual((await coffer.list(token, 'renamed/b')).files.map((f) => f.name), ['inside.txt'], 'its files moved');
  assert.deepEqual((await coffer.list(token, '')).folders, ['renamed']);

  // Delete it, after the confirmation, by keyboard too.
  await page.getByRole('link', { name: 'renamed', exact: true }).focus();
  await page.keyboard.press('Delete');
  const confirm = page.getByRole('dialog', { name: 'Delete renamed' });
  await confirm.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel', 'focus starts inside the dialog');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.getByText('This folder is empty.').waitFor();
  const after = await coffer.list(token, '');
  assert.deepEqual([after.folders, after.files], [[], []]);
  assert.deepEqual((await coffer.list(token, 'renamed/b')).files, []);
  assertClean();
});

test('a folder of 10,000 files: the first page is on screen quickly and "Load more" continues it', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const seed = await coffer.upload(token, 'seed.txt', 'same contents for all', 'big');
  // 9,999 more rows like it, written straight into the database (uploading them one by one
  // would take minutes of fsyncs and prove nothing about the page).
  execFileSync('python3', ['-c', `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
with db:
    db.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9999)
        INSERT INTO files (id, owner_id, folder, name, size, sha256, content_type, description, created_at, modified_at)
        SELECT printf('bulk%028d', i), owner_id, folder, printf('file-%05d.txt', i), size, sha256, content_type, '',
               created_at + i, modified_at + i FROM files, n WHERE id = ?""", (sys.argv[2],))
`, join(coffer.state, 'coffer.db'), seed.id]);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('link', { name: 'big', exact: true }).waitFor();

  // In-app navigation, click to first row on screen: the first time (cold caches in the
  // server) and again; then a reload of the deep URL, from navigation start.
  const firstRow = () => page.waitForFunction(() => {
    const row = document.querySelector('table.files tbody tr[data-key^="f:"]');
    return row && row.getBoundingClientRect().height > 0 && performance.now();
  }, null, { polling: 'raf' }).then((handle) => handle.jsonValue());
  const clickIn = async () => {
    const started = await page.evaluate(() => performance.now());
    await page.getByRole('link', { name: 'big', exact: true }).click();
    return (await firstRow()) - started;
  };
  const cold = await clickIn();
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'My files' }).click();
  const warm = await clickIn();
  await page.reload();
  const reload = await firstRow();
  const report = `click ${cold.toFixed(0)} ms (first), ${warm.toFixed(0)} ms (again); reload ${reload.toFixed(0)} ms`;
  t.diagnostic(`10,000 files, first page on screen: ${report}`);

  const rows = page.locator('table.files tbody tr');
  assert.equal(await rows.count(), 100);
  await page.getByRole('button', { name: 'Load more' }).click();
  await page.getByText('0 folders, 200+ files').waitFor();
  assert.equal(await rows.count(), 200);
  assert.equal(await rows.nth(100).locator('td.name a').textContent(), 'file-00101.txt');
  assertClean();
});
