// Scenario 16: the sign-in page shows a button per OpenID Connect provider; clicking it, signing
// in at a real provider (tests/oidc-provider: panva's oidc-provider on loopback) and coming back
// lands signed in on the files page with the session cookie.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startCoffer, launch, context } from './harness.js';

const PROVIDER = resolve(import.meta.dirname, '../oidc-provider/provider.mjs');

// A free loopback port, for the provider's issuer (Coffer must know it before the provider runs).
const freePort = () => new Promise((done) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => done(port));
  });
});

async function startProvider(t, port, redirectUri, dir) {
  const child = spawn(process.execPath, [PROVIDER], {
    env: {
      ...process.env,
      OP_PORT: String(port),
      OP_REDIRECT_URI: redirectUri,
      OP_KEY_FILE: join(dir, 'key.json'),
      OP_ACCOUNTS: join(dir, 'accounts.json'),
      OP_TAMPER: '',
    },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  t.after(() => child.kill());
  await new Promise((done, fail) => {
    createInterface({ input: child.stdout }).on('line', (line) => { if (line.startsWith('listening')) done(); });
    child.on('exit', (code) => fail(new Error(`the provider exited (${code})`)));
  });
}

test('16. the provider button signs in at the OpenID Provider and lands signed in', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-op-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'secret'), 'coffer-test-secret\n');
  writeFileSync(join(dir, 'accounts.json'), JSON.stringify({
    bob: { email: 'bob@example.org', email_verified: true, preferred_username: 'bob', groups: ['staff'] },
  }));
  const port = await freePort();
  const coffer = await startCoffer(t, `[[oidc.providers]]
id = "test"
label = "Test IdP"
issuer = "http://127.0.0.1:${port}"
client_id = "coffer"
client_secret_file = "${join(dir, 'secret')}"
scopes = ["openid", "email", "profile", "groups"]
auto_create = true
required_groups = ["staff"]
`);
  await startProvider(t, port, `${coffer.url}/auth/oidc/callback`, dir);

  const browser = await launch(t);
  const { ctx } = await context(browser);
  const page = await ctx.newPage();
  // The provider's pages load things from the internet (unreachable here) and are not
  // Coffer's: console errors count only on Coffer's pages.
  const ours = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && page.url().startsWith(coffer.url) && !/status of 4\d\d/.test(message.text())) {
      ours.push(message.text());
    }
  });
  page.on('pageerror', (err) => { if (page.url().startsWith(coffer.url)) ours.push(err.message); });
  await page.goto(`${coffer.url}/app/signin`);
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  // The provider's own login form (its development interaction pages).
  await page.waitForURL(new RegExp(`^http://127\\.0\\.0\\.1:${port}/interaction/`));
  await page.locator('input[name="login"]').fill('bob');
  await page.locator('input[name="password"]').fill('any');
  await page.locator('button[type="submit"]').click();
  await page.getByRole('heading', { name: 'My files', level: 1 }).waitFor();
  assert.match(page.url(), /\/app\/files$/);
  const cookie = (await ctx.cookies()).find((c) => c.name === '__Host-coffer_session');
  assert.ok(cookie && cookie.httpOnly && cookie.secure, 'the web app session cookie is set');

  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByRole('heading', { name: 'Account: bob' }).waitFor();
  await page.getByRole('cell', { name: 'Provider test' }).waitFor();
  assert.deepEqual(ours, [], 'CSP violations or console errors on Coffer pages');
});
