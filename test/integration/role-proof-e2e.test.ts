/**
 * Roles are proven, not claimed, between real processes: a node that holds the cluster secret
 * but not the console authority (its own key instead of the console's) joins as a replica and
 * gets no document, audit record, user or token; forced into the console role with a higher
 * epoch, it neither makes the engine apply anything nor makes the real console step down, and
 * the engine keeps following the real console.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode, waitUntil, type TestNode } from '../helpers/cluster.js';
import { runCohortToEnd, suiteCleanups } from '../helpers/processes.js';
import { loadAuthority, PINNED_KEY_FILE } from '../../src/policy/console-authority.js';
import { openRepository } from '../../src/repository/open-repository.js';

describe('a node with the cluster secret but not the console authority', () => {
  const suite = suiteCleanups(after);
  let dir = '';
  let consoleNode: TestNode;
  let engine: TestNode;
  let rogue: TestNode;
  let token = '';
  const overrides = { console: { polling_delay: '200' }, http: { api_keys: 'role-proof-test-key-0123456789' } };
  const adminUrl = (): string => `http://${consoleNode.config.http!.admin!}`;

  async function admin<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const r = await fetch(`${adminUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    return { status: r.status, json: (await r.json()) as T };
  }

  const engineVersion = async (): Promise<number | null> =>
    (await admin<{ nodes: Array<{ id: string; configVersion: number | null }> }>('GET', '/admin/v1/cluster')).json.nodes.find((n) => n.id === 'engine-1')?.configVersion ?? null;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-roles-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
    consoleNode = await startNode(suite, dir, 'console', { role: 'console', overrides });
    const password = readFileSync(join(dir, 'console', 'admin-password'), 'utf8').trim();
    const login = await fetch(`${adminUrl()}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password }) });
    token = ((await login.json()) as { token: string }).token;
    assert.equal((await admin('PUT', '/admin/v1/config/runtime', { defaultRateLimit: { capacity: 7, refillPerSecond: 1 } })).status, 200);
    engine = await startNode(suite, dir, 'engine-1', { peers: consoleNode.address, overrides });
    await waitUntil(engineVersion, (v) => v !== null && v >= 1, 15_000, 50);
  });

  it('the engine pinned the console authority at its first contact', () => {
    const consoleKey = loadAuthority(join(dir, 'console'), false)!.publicKeyText;
    assert.equal(readFileSync(join(dir, 'engine-1', PINNED_KEY_FILE), 'utf8').trim(), consoleKey);
  });

  it('joined as a replica with a key of its own, gets nothing from the console', async () => {
    mkdirSync(join(dir, 'rogue'), { recursive: true, mode: 0o700 });
    loadAuthority(join(dir, 'rogue'), true); // an authority, but not the console's
    rogue = await startNode(suite, dir, 'rogue', { role: 'replica', peers: consoleNode.address, overrides });
    await rogue.proc.waitForOutput(/CONSOLE_ROLE_UNPROVEN/, 15_000);
    const repo = await openRepository(`sqlite:${join(dir, 'rogue', 'repository.db')}`);
    try {
      assert.equal((await repo.getCurrentConfig()).version, 0, 'no configuration document');
      assert.deepEqual(await repo.listAudit({ limit: 10 }), [], 'no audit record');
      assert.deepEqual(await repo.listAdminUsers(), [], 'no admin user');
      assert.deepEqual(await repo.listAdminTokens(0), [], 'no admin token');
    } finally {
      await repo.close();
    }
  });

  it('forced into the console role with a higher epoch, makes the engine apply nothing and the console keep its role; the engine follows the real console', async () => {
    const promoted = await runCohortToEnd(suite, ['replica', 'promote', '-c', rogue.file, '--force']);
    assert.equal(promoted.code, 0, promoted.stderr);
    await engine.proc.waitForOutput(/ENGINE_CONFIG_UNPROVEN[^\n]*rogue|rogue[^\n]*ENGINE_CONFIG_UNPROVEN/, 15_000);
    await consoleNode.proc.waitForOutput(/rogue claims the console role with a higher epoch but cannot prove/, 15_000);
    const view = await admin<{ role: string }>('GET', '/admin/v1/cluster');
    assert.equal(view.json.role, 'console', 'the real console did not step down');
    // A save on the real console still reaches the engine.
    const saved = await admin<{ version: number }>('PUT', '/admin/v1/config/runtime', { defaultRateLimit: { capacity: 9, refillPerSecond: 1 } });
    assert.equal(saved.status, 200);
    await waitUntil(engineVersion, (v) => v === saved.json.version, 10_000, 50);
    assert.doesNotMatch(engine.proc.stdout(), /"msg":"configuration applied"[^\n]*"console":"rogue"/, 'nothing applied from the rogue');
  });
});
