/**
 * Subclusters between real engine processes: engine-1 and engine-2 in group `east`,
 * engine-3 and engine-4 in group `west` (RF 2), as set in their configuration files. A
 * session lives in the subcluster that issued it and is read from every engine; the token
 * cache stays within a subcluster; replay ids and revocations are shared by both.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterInfoOf, startNode, stateOf, waitUntil } from '../helpers/cluster.js';
import { suiteCleanups } from '../helpers/processes.js';

const API_KEY = 'grid-groups-api-key-0123456789abcdef';

describe('subclusters between real engines (group_id)', () => {
  // Processes are killed by pid when the suite ends, even when a step fails.
  const suite = suiteCleanups(after);
  const runtime: string[] = [];
  let consoleFile = '';

  async function call(i: number, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const r = await fetch(`http://${runtime[i]}${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  }

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-groups-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
    const seed = await startNode(suite, dir, 'console', { role: 'console' });
    consoleFile = seed.file;
    const groups = ['east', 'east', 'west', 'west'];
    for (let i = 0; i < 4; i++) {
      const overrides = { http: { api_keys: API_KEY }, state: { replication_factor: '2', group_id: groups[i]! } };
      const n = await startNode(suite, dir, `engine-${i + 1}`, { peers: seed.address, overrides });
      runtime.push(n.config.http!.runtime!);
    }
    for (let i = 0; i < 4; i++) await waitUntil(() => call(i, 'GET', '/health/ready'), (r) => r.status === 200, 15_000, 50);
    await waitUntil(() => clusterInfoOf(consoleFile), (info) => [1, 2, 3, 4].every((n) => stateOf(info, `engine-${n}`) === 'active'), 5000);
  });

  it('issues session ids carrying the subcluster, readable from every engine', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await call(i % 4, 'POST', '/runtime/v1/sessions', { subject: `user-${i}` });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.match(r.json.id as string, i % 4 < 2 ? /^east\./ : /^west\./);
      ids.push(r.json.id as string);
    }
    for (const id of ids) {
      for (let i = 0; i < 4; i++) assert.equal((await call(i, 'GET', `/runtime/v1/sessions/${id}`)).status, 200, `engine-${i + 1} reads ${id}`);
    }
  });

  it('keeps the token cache within a subcluster and shares replay ids and revocations with every one', async () => {
    assert.equal((await call(0, 'PUT', '/runtime/v1/tokens/t-1', { value: { v: 1 }, ttlSeconds: 60 })).status, 204);
    assert.equal((await call(1, 'GET', '/runtime/v1/tokens/t-1')).status, 200, 'east sees its token');
    assert.equal((await call(3, 'GET', '/runtime/v1/tokens/t-1')).status, 404, 'west does not');

    assert.equal((await call(0, 'POST', '/runtime/v1/replay', { id: 'assertion-9', ttlSeconds: 60 })).status, 201);
    assert.equal((await call(2, 'POST', '/runtime/v1/replay', { id: 'assertion-9', ttlSeconds: 60 })).status, 409, 'a replay in the other subcluster');

    const created = await call(0, 'POST', '/runtime/v1/sessions', { subject: 'revoked-user' });
    assert.equal((await call(3, 'POST', '/runtime/v1/revocations', { id: created.json.id })).status, 204);
    for (let i = 0; i < 4; i++) assert.equal((await call(i, 'GET', `/runtime/v1/sessions/${created.json.id as string}`)).status, 404);
  });
});
