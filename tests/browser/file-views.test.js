// The rest of the files page and the account page: conflict choices, multi-select with Shift,
// sorting, details (description, hash, grants, text preview), password and API tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCoffer, launch, context, signIn, sha256, PASSWORD } from './harness.js';

test('a taken name offers keep both, replace or skip; Shift selects a range for one delete; sorting by upload time', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  for (const name of ['a.txt', 'b.txt', 'c.txt', 'd.txt']) await coffer.upload(token, name, `old ${name}`);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('link', { name: 'd.txt' }).waitFor();

  const again = (name, text) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });
  await page.getByLabel('Upload files').setInputFiles([again('a.txt', 'new a'), again('b.txt', 'new b'), again('c.txt', 'new c')]);
  await page.getByText('3 need a choice').waitFor();
  await page.getByRole('button', { name: 'Keep both a.txt' }).click();
  await page.getByRole('button', { name: 'Replace b.txt' }).click();
  await page.getByRole('button', { name: 'Skip c.txt' }).click();
  await page.getByText('2 of 3 uploaded').waitFor();
  const files = Object.fromEntries((await coffer.list(token)).files.map((file) => [file.name, file]));
  assert.equal(files['a (2).txt'].sha256, sha256('new a'), 'kept both');
  assert.equal(files['b.txt'].sha256, sha256('new b'), 'replaced');
  assert.equal(files['c.txt'].sha256, sha256('old c.txt'), 'skipped');

  // Sort by upload time: the renamed copy, uploaded last, comes last.
  await page.getByRole('button', { name: 'Uploaded', exact: true }).click();
  await page.getByRole('columnheader', { name: 'Uploaded' }).and(page.locator('[aria-sort=ascending]')).waitFor();
  const names = await page.locator('table.files tbody td.name a').allTextContents();
  assert.equal(names.at(-1), 'a (2).txt', names.join(', '));
  await page.getByRole('button', { name: 'Name', exact: true }).click();
  await page.getByRole('columnheader', { name: 'Name', exact: true }).and(page.locator('[aria-sort=ascending]')).waitFor();

  // Click the first, Shift+click the third: three selected, deleted together after confirming.
  await page.getByRole('checkbox', { name: 'Select a (2).txt' }).click();
  await page.getByRole('checkbox', { name: 'Select b.txt' }).click({ modifiers: ['Shift'] });
  await page.getByText('3 selected').waitFor();
  await page.getByRole('button', { name: 'Delete selected' }).click();
  await page.getByRole('dialog', { name: 'Delete 3 items' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByText('0 folders, 2 files').waitFor();
  assert.deepEqual((await coffer.list(token)).files.map((file) => file.name), ['c.txt', 'd.txt']);
  assertClean();
});

test('details show the hash and a text preview, keep a description and add and remove a reader; account changes password and makes a token shown once', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  await coffer.createUser(token, 'dave');
  const file = await coffer.upload(token, 'readme.txt', 'Hello from a plain text file.');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('button', { name: 'Details readme.txt' }).click();
  const details = page.getByRole('dialog', { name: 'readme.txt' });
  await details.getByText(file.sha256).waitFor();
  await details.getByLabel('Text of readme.txt').filter({ hasText: 'Hello from a plain text file.' }).waitFor();
  await details.getByLabel('Description').fill('The project overview');
  await details.getByRole('button', { name: 'Save description' }).click();
  await details.getByLabel('Let a user read it').fill('dave');
  await details.getByRole('button', { name: 'Add' }).click();
  await details.getByRole('button', { name: 'Remove dave' }).waitFor();
  const daveToken = await coffer.token('dave', PASSWORD);
  assert.deepEqual((await coffer.request('GET', '/api/v1/files?shared_with_me=true', { token: daveToken })).json.files.map((f) => f.name), ['readme.txt']);
  await details.getByRole('button', { name: 'Remove dave' }).click();
  await details.getByText('Nobody else can read this file.').waitFor();
  assert.deepEqual((await coffer.request('GET', '/api/v1/files?shared_with_me=true', { token: daveToken })).json.files, []);
  await details.getByRole('button', { name: 'Close' }).click();
  assert.equal((await coffer.request('GET', `/api/v1/files/${file.id}`, { token })).json.description, 'The project overview');

  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByLabel('What is it for?').fill('backup script');
  await page.getByRole('button', { name: 'Make a token' }).click();
  const secret = await page.getByLabel('Token', { exact: true }).inputValue();
  assert.match(secret, /^cfr_/);
  assert.equal((await coffer.request('GET', '/api/v1/me', { token: secret })).status, 200, 'the token works');
  await page.getByRole('cell', { name: 'backup script', exact: true }).waitFor();

  await page.getByLabel('Current password').fill(coffer.adminPassword);
  await page.getByLabel('New password (at least 10 characters)').fill('a-brand-new-passphrase');
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('Password changed. Your other sessions have ended.').waitFor();
  assert.equal((await coffer.request('GET', '/api/v1/me', { token })).status, 401, 'other sessions ended');
  await page.getByRole('link', { name: 'Files', exact: true }).click();
  await page.getByRole('link', { name: 'readme.txt' }).waitFor();
  assertClean();
});
