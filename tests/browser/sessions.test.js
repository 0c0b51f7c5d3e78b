// Scenarios 1 and 9: signing in and out, the cookie, and a session revoked elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCoffer, launch, context, signIn } from './harness.js';

test('1. sign-in: a wrong password shows an alert; the right one lands on files with a strict cookie and nothing in web storage', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await page.goto(`${coffer.url}/`);
  await page.waitForURL(/\/app\/signin$/);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  await page.getByLabel('Password').fill(coffer.adminPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My files', level: 1 }).waitFor();
  assert.match(page.url(), /\/app\/files$/);

  const cookie = (await ctx.cookies()).find((c) => c.name === '__Host-coffer_session');
  assert.ok(cookie, 'the session cookie is set');
  assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite, cookie.path], [true, true, 'Strict', '/']);
  assert.equal(cookie.domain, '127.0.0.1', 'host-only');
  const storage = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(storage, [0, 0, ''], 'no token in web storage, no cookie a script can read');
  assertClean();
});

test('9. sign-out clears the cookie and Back shows no data; a session revoked elsewhere sends the next action to sign-in', async (t) => {
  const coffer = await startCoffer(t);
  const token = await coffer.token();
  await coffer.upload(token, 'private-report.txt', 'secret numbers');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  await page.getByRole('link', { name: 'private-report.txt' }).waitFor();
  await page.getByRole('link', { name: 'Shared with me' }).click();
  await page.getByRole('heading', { name: 'Shared with me' }).waitFor();
  await page.getByRole('link', { name: 'Files', exact: true }).click();
  await page.getByRole('link', { name: 'private-report.txt' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();
  assert.equal((await ctx.cookies()).filter((c) => c.name === '__Host-coffer_session').length, 0, 'cookie cleared');
  await page.goBack();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  assert.equal(await page.getByRole('heading', { name: 'Shared with me' }).count(), 0);
  assert.equal(await page.getByText('private-report.txt').count(), 0, 'Back shows no data');

  // Signed in again; another client ends this browser's session.
  await signIn(page, coffer);
  const sessions = await coffer.request('GET', '/api/v1/me/sessions', { token });
  const browserSession = sessions.json.find((session) => !session.current);
  const ended = await coffer.request('DELETE', `/api/v1/me/sessions/${browserSession.id}`, { token });
  assert.equal(ended.status, 204);
  await page.getByRole('link', { name: 'My shares' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  await page.getByText('Your session ended. Please sign in again.').waitFor();
  assertClean();
});

test('throttled sign-ins say how long to wait', async (t) => {
  const coffer = await startCoffer(t, '[auth]\nlogin_free_failures = 1\n');
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await page.goto(`${coffer.url}/app/signin`);
  await page.getByLabel('Username').fill('admin');
  for (const attempt of ['wrong-password-1', 'wrong-password-2']) {
    await page.getByLabel('Password').fill(attempt);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
  }
  await page.getByLabel('Password').fill('wrong-password-3');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /^Too many attempts; try again in \d+ s\.$/ }).waitFor();
  assertClean();
});

test('a password-reset link opens a page that takes the token off the address and says when the link is spent', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await page.goto(`${coffer.url}/app/reset-password#not-a-token-the-server-gave`);
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  assert.match(page.url(), /\/app\/reset-password$/, 'the token is off the address');
  await page.getByLabel('New password', { exact: true }).fill('a long new passphrase');
  await page.getByLabel('The same again').fill('a different passphrase');
  await page.getByRole('button', { name: 'Set the password' }).click();
  await page.getByRole('alert').filter({ hasText: 'The two passwords differ.' }).waitFor();
  await page.getByLabel('The same again').fill('a long new passphrase');
  await page.getByRole('button', { name: 'Set the password' }).click();
  await page.getByRole('alert').filter({ hasText: 'This link has been used or has expired.' }).waitFor();
  assertClean();
});
