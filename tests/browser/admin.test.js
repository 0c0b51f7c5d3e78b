// Scenario 8: an admin makes a user in the admin page; the user signs in elsewhere, sees an
// empty list and no admin navigation, and the admin pages say not allowed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCoffer, launch, context, signIn, PASSWORD } from './harness.js';

test('8. admin creates a user who signs in elsewhere to an empty list and is not allowed into admin pages', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  await coffer.upload(token, 'admins-own.txt', 'not for others');
  const browser = await launch(t);
  const admin = await context(browser);
  const page = await admin.ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('link', { name: 'Admin', exact: true }).click();
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'New user' }).click();
  const dialog = page.getByRole('dialog', { name: 'New user' });
  await dialog.getByLabel('Username').fill('carol');
  await dialog.getByLabel('Password (at least 10 characters)').fill(PASSWORD);
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('rowheader', { name: 'carol' }).waitFor();
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('cell', { name: 'user_created' }).waitFor();
  admin.assertClean();

  const other = await context(browser);
  const carol = await other.ctx.newPage();
  await signIn(carol, coffer, 'carol', PASSWORD);
  await carol.getByText('This folder is empty.').waitFor();
  assert.equal(await carol.getByText('admins-own.txt').count(), 0);
  assert.equal(await carol.getByRole('link', { name: 'Admin', exact: true }).count(), 0, 'no admin navigation');
  await carol.goto(`${coffer.url}/app/admin/users`);
  await carol.getByRole('heading', { name: 'Not allowed' }).waitFor();
  await carol.getByRole('alert').filter({ hasText: 'Only admins may see this page.' }).waitFor();
  const users = await carol.evaluate(() => fetch('/api/v1/users').then((r) => r.status));
  assert.equal(users, 403, 'and the API agrees');
  other.assertClean();
});

test('admin edits a role and quota, disables, ends sessions of and deletes a user; the audit log filters by event', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  const erin = await coffer.createUser(token, 'erin');
  const erinToken = await coffer.token('erin', PASSWORD);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.goto(`${coffer.url}/app/admin/users`);
  const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'erin' }) });
  await row.getByRole('button', { name: 'Edit erin' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit erin' });
  await edit.getByLabel('Role').selectOption('admin');
  await edit.getByLabel('Quota in GiB (empty: no limit)').fill('2');
  await edit.getByRole('button', { name: 'Save' }).click();
  await row.getByRole('cell', { name: 'Admin', exact: true }).waitFor();
  await row.getByRole('cell', { name: '2 GB' }).waitFor();
  const seen = (await coffer.request('GET', `/api/v1/users/${erin.id}`, { token })).json;
  assert.deepEqual([seen.role, seen.quota_bytes], ['admin', 2 * 1024 ** 3]);

  await row.getByRole('button', { name: 'End sessions erin' }).click();
  await page.locator('#live').filter({ hasText: /sessions of erin ended$/ }).waitFor({ state: 'attached' });
  assert.equal((await coffer.request('GET', '/api/v1/me', { token: erinToken })).status, 401);
  await row.getByRole('button', { name: 'Disable erin' }).click();
  await row.getByRole('cell', { name: 'Disabled' }).waitFor();
  assert.equal((await coffer.request('POST', '/api/v1/auth/login', { body: { username: 'erin', password: PASSWORD } })).status, 401);
  await row.getByRole('button', { name: 'Delete erin' }).click();
  await page.getByRole('dialog', { name: 'Delete erin' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('rowheader', { name: 'erin' }).waitFor({ state: 'detached' });

  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByLabel('Event').fill('user_deleted');
  await page.getByRole('button', { name: 'Filter' }).click();
  // The unfiltered page holds a user_deleted row too: wait until every other event has left the table.
  await page.locator('tbody td:nth-child(2)').filter({ hasNotText: /^user_deleted$/ }).first().waitFor({ state: 'detached' });
  await page.getByRole('cell', { name: 'user_deleted' }).waitFor();
  assert.deepEqual([...new Set(await page.locator('tbody td:nth-child(2)').allTextContents())], ['user_deleted']);
  assertClean();
});
