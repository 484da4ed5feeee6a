/**
 * Chromium for browser tests, driven by playwright-core: the Debian browser at
 * /usr/bin/chromium (or COHORT_TEST_CHROMIUM), headless, with a fresh profile directory, and
 * every request that would leave loopback aborted (pages of test servers may reference the
 * internet; tests never reach it). A missing browser skips the test with a loud notice, or
 * fails it under COHORT_REQUIRE_SERVICES=1.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = process.env.COHORT_TEST_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A browser context on a fresh profile, closed when the test ends; undefined (test skipped) without Chromium. */
export async function chromiumOrSkip(t: TestContext): Promise<BrowserContext | undefined> {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch (err) {
    if (process.env.COHORT_REQUIRE_SERVICES === '1') throw new Error(`Chromium at ${CHROMIUM_PATH} is required (COHORT_REQUIRE_SERVICES=1) but missing: ${(err as Error).message}`);
    process.stderr.write(`\n*** SKIPPED: Chromium not found at ${CHROMIUM_PATH}; set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n`);
    t.skip(`Chromium not found at ${CHROMIUM_PATH}`);
    return undefined;
  }
  const profile = mkdtempSync(join(tmpdir(), 'cohort-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, headless: true, args: ARGS });
  t.after(async () => {
    await context.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  });
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' ? route.continue() : route.abort();
  });
  return context;
}
