/**
 * The engine's saved configuration (DATA_DIR/applied-config.json) is checked when loaded: a
 * file changed by hand, even into valid JSON the schema accepts, is refused with its code
 * logged, kept aside as applied-config.json.damaged, and the engine asks the console for a full
 * copy, not ready until it has one. Copies from the console are checked too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/core/clock.js';
import { Secret } from '../../src/config/secret.js';
import { contentHash } from '../../src/repository/canonical-json.js';
import type { ConfigDocument } from '../../src/repository/repository.js';
import type { Rpc } from '../../src/rpc/rpc.js';
import type { Member } from '../../src/cluster/member-list.js';
import { appliedConfigKeys, sealAppliedConfig, signAppliedConfig, type AppliedConfig } from '../../src/engine/applied-config.js';
import { APPLIED_CONFIG_FILE, ConfigFollower, fetchStatement, type FetchAnswer, type FetchRequest } from '../../src/engine/config-follower.js';
import { loadAuthority, PINNED_KEY_FILE, signStatement, type ConsoleAuthority } from '../../src/policy/console-authority.js';
import type { KeyObject } from 'node:crypto';
import { captureLogger } from '../helpers/transports.js';
import { waitUntil } from '../helpers/cluster.js';

const HASH = 'a'.repeat(64);
const [KEY, OTHER_KEY] = appliedConfigKeys('cluster-1', [new Secret('the-cluster-secret-0123456789'), new Secret('another-secret-0123456789abc')]);

function doc(version: number, section: string, content: unknown): ConfigDocument {
  return { version, section, epoch: 0, content, hash: contentHash(content), createdAt: 1, author: 'admin', node: 'console' };
}

const SECTIONS = {
  runtime: doc(1, 'runtime', { lockout: { maxFailures: 5, windowSeconds: 60, lockSeconds: 60 } }),
  'api-keys': doc(2, 'api-keys', { keys: [{ id: 'k1', name: 'one', hash: HASH, createdAt: 1, createdBy: 'admin' }] }),
  apis: doc(2, 'apis', { apis: [{ id: 'orders', pathPrefix: '/orders' }] }),
};
const SAVED: AppliedConfig = { epoch: 0, version: 2, appliedAt: 5, sections: SECTIONS };
const CONSOLE = { id: 'console', address: '127.0.0.1:1', meta: { role: 'console' } } as unknown as Member;

const AUTHORITY = testAuthority();
const IMPOSTOR = testAuthority();

function testAuthority(): ConsoleAuthority {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-authority-'));
  try {
    return loadAuthority(dir, true)!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `answer` signed over the request's nonce by `authority`, as the console signs it. */
function signed(authority: ConsoleAuthority, req: FetchRequest, answer: FetchAnswer): FetchAnswer {
  return { ...answer, proof: signStatement(authority, 'config-fetch', { nonce: req.nonce ?? null }, fetchStatement(answer)) };
}

/**
 * An Rpc whose consoles answer (or are away when there is none); records every request. By
 * default one console, answering `answer` signed by AUTHORITY; `consoles` maps addresses to
 * answers (already signed or not) for several.
 */
function fakeRpc(answer?: (req: FetchRequest) => FetchAnswer, consoles?: Map<string, (req: FetchRequest) => FetchAnswer>): { rpc: Rpc; requests: FetchRequest[] } {
  const requests: FetchRequest[] = [];
  const rpc = {
    handle() {},
    notify() {},
    call: async (to: string, _method: string, body: unknown) => {
      requests.push(body as FetchRequest);
      const req = body as FetchRequest;
      if (consoles) return consoles.get(to)!(req);
      if (!answer) throw new Error('no console');
      return signed(AUTHORITY, req, answer(req));
    },
  } as unknown as Rpc;
  return { rpc, requests };
}

async function startFollower(
  t: { after(fn: () => void): void },
  dir: string,
  options: { answer?: (req: FetchRequest) => FetchAnswer; keys?: Buffer[]; consoles?: Array<[Member, (req: FetchRequest) => FetchAnswer]>; consoleKey?: KeyObject } = {},
) {
  const { logger, raw } = captureLogger();
  const { rpc, requests } = fakeRpc(options.answer, options.consoles && new Map(options.consoles.map(([m, a]) => [m.address, a])));
  const clock = new ManualClock(1_000);
  const f = new ConfigFollower({
    rpc,
    clock,
    log: logger,
    dataDir: dir,
    pollingDelayMs: 1000,
    integrityKeys: options.keys ?? [KEY!],
    consoles: () => (options.consoles ? options.consoles.map(([m]) => m) : options.answer ? [CONSOLE] : []),
    consoleKey: options.consoleKey,
  });
  t.after(() => f.stop());
  await f.start();
  return { f, raw, requests, clock };
}

function dataDir(t: { after(fn: () => void): void }): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-follower-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, path: join(dir, APPLIED_CONFIG_FILE) };
}

/** A copy of the signed configuration (clear, as an earlier version wrote it) with `change` applied, signed again or not. */
function edited(change: (file: { sections: Record<string, ConfigDocument> }) => void, seal: boolean): string {
  const config = structuredClone(SAVED);
  change(config);
  return seal ? signAppliedConfig(config, KEY!) : JSON.stringify({ ...JSON.parse(signAppliedConfig(SAVED, KEY!)), sections: config.sections });
}

describe('the engine loads its saved configuration only when it is intact', () => {
  it('loads an intact file, also one sealed with a previous cluster secret (a rotation), and a clear one of an earlier version', async (t) => {
    for (const [sealedWith, write] of [[KEY!, sealAppliedConfig], [OTHER_KEY!, sealAppliedConfig], [KEY!, signAppliedConfig]] as const) {
      const { dir, path } = dataDir(t);
      writeFileSync(path, write(SAVED, sealedWith));
      const { f } = await startFollower(t, dir, { keys: [KEY!, OTHER_KEY!] });
      assert.equal(f.hasConfiguration, true);
      assert.equal(f.notReadyReason(), undefined);
      assert.deepEqual(f.state, { version: 2, epoch: 0, appliedAt: 5 });
      assert.equal(f.settings().lockoutPolicy.maxFailures, 5);
      // The apis section reaches access decisions.
      assert.deepEqual(f.settings().access.apis.map((a) => a.id), ['orders']);
    }
  });

  const tampers: Array<[string, (text: string) => string]> = [
    ['one character of an API-key hash changed', () => signAppliedConfig(SAVED, KEY!).replace(HASH, `b${HASH.slice(1)}`)],
    ['maxFailures 5 → 9, still valid JSON', () => signAppliedConfig(SAVED, KEY!).replace('"maxFailures":5', '"maxFailures":9')],
    ['one byte of the encrypted file changed', (t) => {
      const file = JSON.parse(t) as { data: string };
      const data = Buffer.from(file.data, 'base64url');
      data[10] = data[10]! ^ 1;
      return JSON.stringify({ ...file, data: data.toString('base64url') });
    }],
    ['the file cut short', (t) => t.slice(0, Math.floor(t.length / 2))],
    ['maxFailures 5 → 9 with the document digest made again', () => edited((c) => {
      const runtime = c.sections.runtime!;
      runtime.content = { lockout: { maxFailures: 9, windowSeconds: 60, lockSeconds: 60 } };
      runtime.hash = contentHash(runtime.content);
    }, false)],
    ['a file sealed with another cluster secret', () => sealAppliedConfig(SAVED, OTHER_KEY!)],
    ['a file of an earlier version, without an integrity code', () => JSON.stringify(SAVED)],
    ['a sealed file whose document does not match its digest', () => edited((c) => {
      c.sections.runtime!.content = { lockout: { maxFailures: 9, windowSeconds: 60, lockSeconds: 60 } };
    }, true)],
    ['a sealed file whose document breaks its schema', () => edited((c) => {
      const keys = c.sections['api-keys']!;
      keys.content = { keys: [{ id: 'k1', name: 'one', hash: 'not-hex', createdAt: 1, createdBy: 'admin' }] };
      keys.hash = contentHash(keys.content);
    }, true)],
  ];
  for (const [what, tamper] of tampers) {
    it(`refuses ${what}: logged with its code, kept aside, not ready`, async (t) => {
      const { dir, path } = dataDir(t);
      const text = sealAppliedConfig(SAVED, KEY!);
      const forged = tamper(text);
      assert.notEqual(forged, text);
      writeFileSync(path, forged);
      const { f, raw } = await startFollower(t, dir);
      assert.equal(f.hasConfiguration, false, 'the tampered file is not used');
      assert.equal(f.settings().lockoutPolicy.maxFailures, 5, 'the defaults, not the forged value');
      assert.equal(f.settings().apiKeyHashes.length, 0);
      assert.match(raw.join(''), /"level":50.*ENGINE_CONFIG_CACHE_INVALID/);
      assert.match(f.notReadyReason() ?? '', /ENGINE_CONFIG_CACHE_INVALID/);
      assert.equal(existsSync(path), false);
      assert.equal(readFileSync(`${path}.damaged`, 'utf8'), forged, 'kept aside as it was');
    });
  }

  it('after a refused file, asks the console for a full copy, applies it and saves it sealed', async (t) => {
    const { dir, path } = dataDir(t);
    writeFileSync(path, signAppliedConfig(SAVED, KEY!).replace('"maxFailures":5', '"maxFailures":9'));
    // The console is at the very version and epoch the forged file claims.
    const { f, requests } = await startFollower(t, dir, { answer: (req) => ({ version: 2, epoch: 0, ...(req.full ? { sections: SECTIONS } : {}) }) });
    await waitUntil(async () => f.hasConfiguration, (ok) => ok, 10_000, 5);
    assert.equal(requests[0]!.full, true);
    assert.equal(f.settings().lockoutPolicy.maxFailures, 5);
    assert.equal(f.notReadyReason(), undefined);
    // It wrote the file encrypted: nothing of the configuration shows.
    const written = readFileSync(path, 'utf8');
    assert.equal((JSON.parse(written) as { format: number }).format, 2);
    assert.ok(!written.includes('maxFailures') && !written.includes(HASH), 'no clear content in the file');
    // The file it wrote loads at the next start.
    const again = await startFollower(t, dir);
    assert.equal(again.f.hasConfiguration, true);
    assert.equal(again.f.settings().lockoutPolicy.maxFailures, 5);
  });

  it('refuses a copy from the console whose document does not match its digest, and says so in its next fetch', async (t) => {
    const { dir } = dataDir(t);
    const bad = { ...SECTIONS, runtime: { ...SECTIONS.runtime, content: { lockout: { maxFailures: 9, windowSeconds: 60, lockSeconds: 60 } } } };
    const { f, raw, requests, clock } = await startFollower(t, dir, { answer: () => ({ version: 2, epoch: 0, sections: bad }) });
    await waitUntil(async () => raw.join(''), (text) => text.includes('ENGINE_CONFIG_REFUSED'), 10_000, 5);
    assert.equal(f.hasConfiguration, false);
    assert.match(f.notReadyReason() ?? '', /ENGINE_CONFIG_REFUSED/);
    assert.equal(existsSync(join(dir, APPLIED_CONFIG_FILE)), false, 'nothing saved');
    // The next poll reports the failure to the console (replication `failed` there).
    const polled = async (): Promise<string | undefined> => {
      clock.advance(1000);
      return requests.at(-1)?.error;
    };
    await waitUntil(polled, (e) => /ENGINE_CONFIG_REFUSED/.test(e ?? ''), 10_000, 5);
  });
});

describe('the engine applies only configurations the console authority signed', () => {
  const IMPOSTOR_NODE = { id: 'impostor', address: '127.0.0.1:2', meta: { role: 'console', epoch: 99 } } as unknown as Member;
  const full = (req: FetchRequest): FetchAnswer => ({ version: 2, epoch: 0, ...(req.full ? { sections: SECTIONS } : {}) });
  const loosened = { runtime: doc(3, 'runtime', { lockout: { maxFailures: 100, windowSeconds: 60, lockSeconds: 1 } }) };
  const impostorAnswer = (by?: ConsoleAuthority) => (req: FetchRequest): FetchAnswer => {
    const answer: FetchAnswer = { version: 3, epoch: 99, sections: loosened };
    return by ? signed(by, req, answer) : answer;
  };

  it('pins the key of the first console that proves it, then ignores a node that only claims the role (higher epoch, unsigned or signed by another key) and follows the real console', async (t) => {
    const { dir } = dataDir(t);
    const first = await startFollower(t, dir, { answer: full });
    await waitUntil(async () => first.f.hasConfiguration, (v) => v, 5000, 5);
    assert.equal(readFileSync(join(dir, PINNED_KEY_FILE), 'utf8').trim(), AUTHORITY.publicKeyText, 'pinned at the first proven contact');
    first.f.stop();

    for (const impostor of [impostorAnswer(), impostorAnswer(IMPOSTOR)]) {
      const real = (req: FetchRequest): FetchAnswer => signed(AUTHORITY, req, { version: 2, epoch: 0, sections: SECTIONS });
      const { f, raw } = await startFollower(t, dir, { consoles: [[IMPOSTOR_NODE, impostor], [CONSOLE, real]] });
      await waitUntil(async () => raw.some((l) => l.includes('ENGINE_CONFIG_UNPROVEN')), (v) => v, 5000, 5);
      await waitUntil(async () => f.state, (s) => s !== undefined, 5000, 5);
      assert.equal(f.settings().lockoutPolicy.maxFailures, 5, 'the real console\'s configuration, not the impostor\'s');
      assert.deepEqual(f.state && [f.state.version, f.state.epoch], [2, 0]);
      f.stop();
    }
  });

  it('with [cluster] console_public_key set, refuses another authority from the very first contact', async (t) => {
    const { dir } = dataDir(t);
    const { f, raw } = await startFollower(t, dir, { consoles: [[IMPOSTOR_NODE, impostorAnswer(IMPOSTOR)]], consoleKey: AUTHORITY.publicKey });
    await waitUntil(async () => raw.some((l) => l.includes('ENGINE_CONFIG_UNPROVEN')), (v) => v, 5000, 5);
    assert.equal(f.hasConfiguration, false);
    assert.equal(existsSync(join(dir, PINNED_KEY_FILE)), false, 'nothing pinned');
  });

  it('does not take an answer signed for another request (a replayed answer)', async (t) => {
    const { dir } = dataDir(t);
    const replayed = signed(AUTHORITY, { version: 0, epoch: -1, nonce: 'an-old-nonce' }, { version: 3, epoch: 0, sections: loosened });
    const { f, raw } = await startFollower(t, dir, { consoles: [[CONSOLE, () => replayed]], consoleKey: AUTHORITY.publicKey });
    await waitUntil(async () => raw.some((l) => l.includes('ENGINE_CONFIG_UNPROVEN')), (v) => v, 5000, 5);
    assert.equal(f.hasConfiguration, false);
  });
});

describe('the engine asks a console as soon as one joins', () => {
  it('fetches when the first console appears among the members, not at the next poll; members changing otherwise fetch nothing', async (t) => {
    const { dir } = dataDir(t);
    const consoles: Member[] = [];
    const { rpc, requests } = fakeRpc((req) => ({ version: 2, epoch: 0, ...(req.full ? { sections: SECTIONS } : {}) }));
    const clock = new ManualClock(1_000);
    const f = new ConfigFollower({ rpc, clock, log: captureLogger().logger, dataDir: dir, pollingDelayMs: 60_000, integrityKeys: [KEY!], consoles: () => consoles });
    t.after(() => f.stop());
    await f.start();
    f.consolesChanged(); // a member changed, still no console
    assert.equal(requests.length, 0);
    assert.equal(f.hasConfiguration, false);

    consoles.push(CONSOLE); // the engine joined: the console is a member now
    f.consolesChanged();
    await waitUntil(async () => f.hasConfiguration, (v) => v, 5000, 5);
    assert.equal(requests.length, 1, 'asked once, with the clock still where it was (no poll)');
    f.consolesChanged(); // another member changed; the consoles are the same
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(requests.length, 1);
  });
});
