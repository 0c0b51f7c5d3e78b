// Scenario 11: a page on another port of 127.0.0.1 (same site, other origin) auto-submits a
// form and fires a no-cors fetch at a state-changing endpoint. The browser sends the
// SameSite=Strict cookie with both (same site); Coffer refuses both with 403 and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCoffer, launch, context, signIn } from './harness.js';

test('11. CSRF from a same-site page on another port: form post and no-cors fetch get 403, nothing changes', async (t) => {
  const coffer = await startCoffer(t);
  const browser = await launch(t);
  const { ctx, assertClean } = await context(browser);
  const page = await ctx.newPage();
  await signIn(page, coffer);
  assertClean();

  // The attacker's page, over HTTPS with Coffer's own self-signed certificate and key.
  const key = readFileSync(join(coffer.state, 'tls/self-signed.key'));
  const cert = readFileSync(join(coffer.state, 'tls/self-signed.crt'));
  const target = `${coffer.url}/api/v1/folders`;
  const evil = createServer({ key, cert }, (req, res) => {
    res.setHeader('content-type', 'text/html');
    if (req.url === '/form') {
      res.end(`<form id=f method=post action="${coffer.url}/api/v1/auth/logout" enctype="text/plain">
        <input name='{"path":"by-form","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`);
    } else {
      res.end(`<script>
        fetch(${JSON.stringify(target)}, { method: 'POST', mode: 'no-cors', credentials: 'include',
          headers: { 'Content-Type': 'text/plain' }, body: '{"path":"by-fetch"}' })
          .then(() => { document.title = 'sent'; }, () => { document.title = 'failed'; });
      </script>`);
    }
  });
  await new Promise((done) => evil.listen(0, '127.0.0.1', done));
  t.after(() => evil.close());
  const origin = `https://127.0.0.1:${evil.address().port}`;

  const answers = [];
  page.on('response', (response) => { if (response.url().startsWith(coffer.url)) answers.push([response.url(), response.status()]); });
  await page.goto(`${origin}/fetch`);
  await page.waitForFunction(() => document.title === 'sent' || document.title === 'failed');
  const posted = page.waitForResponse((response) => response.url() === `${coffer.url}/api/v1/auth/logout`);
  await page.goto(`${origin}/form`);
  const form = await posted;
  assert.equal(form.status(), 403, 'the form post is refused');
  assert.equal((await form.json()).error, 'cross_site_request');

  // The cookie went along (same site), yet nothing happened: still signed in, nothing made.
  const token = await coffer.token();
  assert.deepEqual((await coffer.list(token)).folders, []);
  const sessions = await coffer.request('GET', '/api/v1/me/sessions', { token });
  assert.equal(sessions.json.length, 2, 'the browser session was not signed out');
  await page.goto(`${coffer.url}/app/files`);
  await page.getByRole('heading', { name: 'My files', level: 1 }).waitFor();
  const refused = coffer.log.filter((line) => line.includes('"status":403') && line.includes('/api/v1/'));
  assert.ok(refused.length >= 2, `both requests were refused with 403:\n${refused.join('\n')}`);
});
