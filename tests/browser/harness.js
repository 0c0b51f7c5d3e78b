// Shared by the browser tests: a real Coffer (the debug binary) on a free loopback port with
// a fresh state directory over HTTPS, Debian's Chromium through playwright-core, an HTTPS
// client for the API, and the guard every page carries: no CSP violation, no console error.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import https from 'node:https';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../..');
const BINARY = process.env.COFFER_BIN || join(ROOT, 'target/debug/coffer');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const PASSWORD = 'correct-horse-battery-staple';

const BASE_TOML = `[server]
listen = ["127.0.0.1:0"]
[storage]
state_dir = "STATE"
disk_reserve = "1 MiB"
[log]
format = "json"
[rate_limits]
public_per_minute = 1000000
public_burst = 1000000
api_per_minute = 1000000
api_burst = 1000000
`;

// Starts Coffer; stopped (and its directory removed) when the test ends. `extra` is TOML
// appended to the config (its [auth] table gets the fast test hashing parameters).
export async function startCoffer(t, extra = '') {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-browser-'));
  const state = join(dir, 'state');
  const auth = /\[auth\]/.test(extra) ? '' : '[auth]\n';
  const toml = `${BASE_TOML.replace('STATE', state)}${auth}${extra}\n`
    .replace('[auth]\n', '[auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n');
  writeFileSync(join(dir, 'coffer.toml'), toml);
  const clockFile = join(dir, 'clock-offset');
  writeFileSync(clockFile, '0');
  const child = spawn(BINARY, ['serve', '--config', join(dir, 'coffer.toml')], {
    // COFFER_* variables would configure the server: none from the caller's environment.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('COFFER_'))), TESTING_COFFER_CLOCK_FILE: clockFile },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  const url = await new Promise((done, fail) => {
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      log.push(line);
      try {
        const entry = JSON.parse(line);
        const message = entry.fields ? entry.fields.message : entry.message;
        const address = entry.fields ? entry.fields.url : entry.url;
        if (message === 'listening' && address) done(address);
      } catch { /* not JSON */ }
    });
    child.on('exit', (code) => fail(new Error(`coffer exited (${code}) before listening:\n${log.join('\n')}`)));
  });
  const cert = readFileSync(join(state, 'tls/self-signed.crt'));
  const agent = new https.Agent({ ca: cert, keepAlive: true });
  t.after(async () => {
    agent.destroy();
    child.kill('SIGTERM');
    await new Promise((done) => (child.exitCode !== null ? done() : child.on('exit', done)));
    rmSync(dir, { recursive: true, force: true });
  });
  const coffer = {
    url: url.replace(/\/$/, ''),
    state,
    // Trusts the server's self-signed certificate (for other HTTPS clients, such as tus-js-client).
    agent,
    log,
    adminPassword: readFileSync(join(state, 'initial-admin-password'), 'utf8').trim(),
    // Moves the server's clock forward.
    advanceClock(seconds) {
      const now = Number(readFileSync(clockFile, 'utf8'));
      writeFileSync(clockFile, String(now + seconds));
    },
    // One API request with a bearer token: { status, headers, body (Buffer), json }.
    request(method, path, { token, body, headers = {} } = {}) {
      const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      const all = { ...headers };
      if (token) all.authorization = `Bearer ${token}`;
      if (payload && !Buffer.isBuffer(body)) all['content-type'] = 'application/json';
      return new Promise((done, fail) => {
        const req = https.request(`${coffer.url}${path}`, { method, agent, headers: all }, (res) => {
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('end', () => {
            const data = Buffer.concat(chunks);
            let json = null;
            try { json = JSON.parse(data.toString('utf8')); } catch { json = null; }
            done({ status: res.statusCode, headers: res.headers, body: data, json });
          });
        });
        req.on('error', fail);
        if (payload) req.write(payload);
        req.end();
      });
    },
    async token(username = 'admin', password = coffer.adminPassword) {
      const answer = await coffer.request('POST', '/api/v1/auth/login', { body: { username, password } });
      assert.equal(answer.status, 200, answer.body.toString());
      return answer.json.access_token;
    },
    async upload(token, name, bytes, folder = '') {
      const query = new URLSearchParams({ name, ...(folder ? { folder } : {}) });
      const answer = await coffer.request('PUT', `/api/v1/files/upload?${query}`, { token, body: Buffer.from(bytes) });
      assert.equal(answer.status, 201, answer.body.toString());
      return answer.json;
    },
    async createUser(token, username, role = 'user') {
      const answer = await coffer.request('POST', '/api/v1/users', { token, body: { username, password: PASSWORD, role } });
      assert.equal(answer.status, 201, answer.body.toString());
      return answer.json;
    },
    async list(token, folder = '') {
      const answer = await coffer.request('GET', `/api/v1/files?folder=${encodeURIComponent(folder)}&limit=1000`, { token });
      assert.equal(answer.status, 200);
      return answer.json;
    },
  };
  return coffer;
}

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

export async function launch(t) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  t.after(() => browser.close());
  return browser;
}

// Network refusals the app expects and handles (a 401 before sign-in, a 409 conflict) are
// logged by Chromium as "Failed to load resource: ... status of 4xx"; they are answers, not
// errors of the page. Anything else on the console at error level fails the test.
const EXPECTED_REFUSAL = /^Failed to load resource: the server responded with a status of 4\d\d/;

// A browser context whose pages report every CSP violation and console error into `problems`.
export async function context(browser, options = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 }, ...options });
  ctx.setDefaultTimeout(10_000);
  const problems = [];
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`);
    });
  });
  const watch = (page) => {
    page.on('console', (message) => {
      if (message.type() === 'error' && !EXPECTED_REFUSAL.test(message.text())) problems.push(message.text());
    });
    page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  };
  ctx.on('page', watch);
  return {
    ctx,
    problems,
    // Asserts that no page of this context had a CSP violation or a console error.
    assertClean() {
      assert.deepEqual(problems, [], 'CSP violations or console errors');
    },
  };
}

export async function signIn(page, coffer, username = 'admin', password = coffer.adminPassword) {
  await page.goto(`${coffer.url}/app/files`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My files', level: 1 }).waitFor();
}

// Uploads go at about `bytesPerSecond` (Chromium's own network emulation).
export async function throttle(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: bytesPerSecond,
  });
  return cdp;
}

// Waits until the upload row's <progress> shows more than `above`; returns its value.
export async function progressAbove(page, name, above) {
  const handle = await page.waitForFunction(([label, floor]) => {
    const bar = document.querySelector(`progress[aria-label="${CSS.escape(label)}"]`);
    return bar && bar.value > floor && bar.value;
  }, [`Uploading ${name}`, above], { polling: 'raf', timeout: 20_000 });
  return handle.jsonValue();
}

// Deterministic bytes.
export function bytesOf(length, seed = 1) {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 1) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
