// Scenario 13: screenshots of sign-in, files, the share dialog and My shares at 1280x800 in
// light and dark and at 390x844, compared with committed baselines (tests/browser/baselines).
// The server's clock, the browser's time zone and locale and the data are fixed, so the pages
// are the same from run to run; UPDATE_BASELINES=1 writes new baselines. Every shot is
// kept under target/browser-screenshots for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';
import { startCoffer, launch, context, signIn, bytesOf } from './harness.js';

const BASELINES = resolve(import.meta.dirname, 'baselines');
const SHOTS = resolve(import.meta.dirname, '../../target/browser-screenshots');
const UPDATE = process.env.UPDATE_BASELINES === '1';
const FIXED_TIME = Date.UTC(2026, 0, 15, 10, 0, 0) / 1000;

const LOOKS = [
  { name: 'desktop-light', viewport: { width: 1280, height: 800 }, colorScheme: 'light' },
  { name: 'desktop-dark', viewport: { width: 1280, height: 800 }, colorScheme: 'dark' },
  { name: 'phone', viewport: { width: 390, height: 844 }, colorScheme: 'light', isMobile: true, hasTouch: true },
];

function compare(shot, png) {
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, `${shot}.png`), png);
  const baseline = join(BASELINES, `${shot}.png`);
  if (UPDATE) {
    mkdirSync(BASELINES, { recursive: true });
    writeFileSync(baseline, png);
    return;
  }
  assert.ok(existsSync(baseline), `no baseline for ${shot}: run with UPDATE_BASELINES=1 and look at it`);
  const [want, got] = [PNG.sync.read(readFileSync(baseline)), PNG.sync.read(png)];
  assert.deepEqual([got.width, got.height], [want.width, want.height], `${shot}: size`);
  const diff = new PNG({ width: want.width, height: want.height });
  const differing = pixelmatch(want.data, got.data, diff.data, want.width, want.height, { threshold: 0.1 });
  if (differing > 0) writeFileSync(join(SHOTS, `${shot}.diff.png`), PNG.sync.write(diff));
  const share = differing / (want.width * want.height);
  assert.ok(share <= 0.005, `${shot}: ${(share * 100).toFixed(2)}% of pixels differ (see ${SHOTS})`);
}

test('13. sign-in, files, share dialog and My shares look as they did, light, dark and on a phone without sideways scrolling', async (t) => {
  const coffer = await startCoffer(t);
  coffer.advanceClock(Math.round(FIXED_TIME - Date.now() / 1000));
  const token = await coffer.token();
  const report = await coffer.upload(token, 'Quarterly report 2025.pdf', bytesOf(482_133, 1));
  await coffer.upload(token, 'team-photo.jpg', bytesOf(2_400_000, 2));
  await coffer.upload(token, 'notes.txt', 'plain text notes');
  await coffer.upload(token, 'budget.ods', bytesOf(48_000, 3), 'Projects');
  await coffer.request('POST', '/api/v1/folders', { token, body: { path: 'Archive' } });
  await coffer.request('POST', '/api/v1/shares', { token, body: { file_id: report.id, expires_in: 7 * 86400, max_downloads: 10, password: 'a share password' } });
  const browser = await launch(t);
  for (const look of LOOKS) {
    const { name, ...options } = look;
    const { ctx, assertClean } = await context(browser, { ...options, locale: 'en-US', timezoneId: 'UTC', reducedMotion: 'reduce' });
    const page = await ctx.newPage();
    const shoot = async (view) => {
      const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(wide <= 0, `${view} at ${name}: ${wide} px of sideways scrolling`);
      await page.evaluate(() => document.activeElement && document.activeElement.blur && document.activeElement.blur());
      compare(`${view}-${name}`, await page.screenshot({ animations: 'disabled', caret: 'hide' }));
    };
    await page.goto(`${coffer.url}/app/signin`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await shoot('signin');
    await signIn(page, coffer);
    await page.getByRole('link', { name: 'notes.txt' }).waitFor();
    await shoot('files');
    await page.getByRole('button', { name: 'Share notes.txt' }).click();
    await page.getByRole('dialog', { name: 'Share notes.txt' }).waitFor();
    await shoot('share-dialog');
    await page.keyboard.press('Escape');
    await page.getByRole('link', { name: 'My shares' }).click();
    await page.getByRole('cell', { name: '0 / 10' }).waitFor();
    await shoot('my-shares');
    assertClean();
    await ctx.close();
  }
});
