/**
 * The console's first admin user: with `[console] admin_password` (a password kept in a
 * secret store) it is created with that password and no password file; without it, with a
 * generated one written to DATA_DIR/admin-password. A value that no longer matches the stored
 * password changes nothing and is reported at start.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { AdminAuth, ADMIN_PASSWORD_FILE } from '../../src/console/admin-auth.js';
import { Secret } from '../../src/config/secret.js';
import { buildNodeConfig } from '../../src/config/node-config.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import { obfuscate } from '../../src/config/obfuscation.js';
import { sqliteRepository } from '../helpers/repositories.js';
import { configText, TEST_SECRET } from '../helpers/node-config.js';
import { tmpDir } from '../helpers/tmp.js';

function capturingLogger(): { log: Logger; lines: () => string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter((l) => l.length > 0));
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines: () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

async function auth(t: TestContext) {
  const clock = new ManualClock(1_800_000_000_000);
  const repository = await sqliteRepository(t, clock);
  const a = new AdminAuth({
    repository, clock, tokenTtlMs: 3_600_000, maxFailures: 5, lockoutMs: 60_000, userMaxFailures: 20,
    sourceBurst: 100, sourcePerMinute: 100, maxConcurrent: 4, log: silentLogger(), nodeId: 'console', auditsFailures: () => true,
  });
  return { a, repository };
}

describe('the first admin user', () => {
  it('takes [console] admin_password when set, and writes no password file', async (t) => {
    const { a } = await auth(t);
    const dataDir = tmpDir(t);
    assert.equal(await a.ensureFirstUser('admin', dataDir, 'console', silentLogger(), new Secret('from-the-secret-store')), undefined);
    assert.ok(!existsSync(join(dataDir, ADMIN_PASSWORD_FILE)));
    assert.ok((await a.login('admin', 'from-the-secret-store', '192.0.2.1')).token);
    await assert.rejects(a.login('admin', 'something-else-entirely', '192.0.2.1'));
  });

  it('without it, is given a generated password written to DATA_DIR/admin-password', async (t) => {
    const { a } = await auth(t);
    const dataDir = tmpDir(t);
    const file = await a.ensureFirstUser('admin', dataDir, 'console', silentLogger());
    assert.equal(file, join(dataDir, ADMIN_PASSWORD_FILE));
    assert.ok((await a.login('admin', readFileSync(file!, 'utf8').trim(), '192.0.2.1')).token);
  });

  it('keeps its stored password when admin_password changes later, and says so at start', async (t) => {
    const { a } = await auth(t);
    const dataDir = tmpDir(t);
    await a.ensureFirstUser('admin', dataDir, 'console', silentLogger(), new Secret('the-first-password'));
    const same = capturingLogger();
    await a.ensureFirstUser('admin', dataDir, 'console', same.log, new Secret('the-first-password'));
    assert.deepEqual(same.lines(), [], 'nothing to say while it matches');
    const changed = capturingLogger();
    await a.ensureFirstUser('admin', dataDir, 'console', changed.log, new Secret('a-rotated-password'));
    assert.equal(changed.lines().length, 1);
    assert.match(changed.lines()[0]!, /admin_password does not match the stored password of admin/);
    assert.ok((await a.login('admin', 'the-first-password', '192.0.2.1')).token, 'the stored password stays in force');
  });

  it('[console] admin_password: a secret of 12 to 128 characters, plain or OBF:, from the file or COHORT_CONSOLE_ADMIN_PASSWORD', () => {
    const load = (value: string | undefined, env: Record<string, string> = {}) => {
      const console: Record<string, string> = value === undefined ? {} : { admin_password: value };
      const text = configText({ node: { id: 'console', role: 'console' }, cluster: { id: 'c', secret_key: TEST_SECRET }, console });
      return buildNodeConfig(parseConfigText(text, '/x/console.ini'), '/x/console.ini', env).console.adminPassword;
    };
    assert.equal(load(undefined), undefined);
    assert.equal(load(''), undefined);
    assert.equal(load('twelve-chars')?.reveal(), 'twelve-chars');
    assert.equal(load(obfuscate('an-obfuscated-one'))?.reveal(), 'an-obfuscated-one');
    assert.equal(load(undefined, { COHORT_CONSOLE_ADMIN_PASSWORD: 'from-the-environment' })?.reveal(), 'from-the-environment');
    assert.throws(() => load('too-short'), (err: Error) => /admin_password.*\(value hidden\).*shorter than 12/.test(err.message) && !err.message.includes('too-short'));
    assert.throws(() => load('x'.repeat(129)), /more than 128/);
  });
});
