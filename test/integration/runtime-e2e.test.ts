/**
 * The runtime API of real engine processes: `cohort up`'s API key works against its engines,
 * and two engines on the Redis provider share every session.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startNode, waitUntil } from '../helpers/cluster.js';
import { redisUrlOrSkip } from '../helpers/services.js';
import { tmpDir } from '../helpers/tmp.js';

const API_KEY = 'e2e-runtime-api-key-0123456789abcdef';

// Answers are checked field by field in the tests; a loose type keeps them readable.
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(base: string, method: string, path: string, body?: unknown, key = API_KEY): Promise<{ status: number; json: Json }> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : {}) as Json };
}

describe('runtime API on real engines', () => {
  it('is ready only once it has a configuration from the console; serves sessions with the configured API key, and refuses other keys', async (t) => {
    const dir = tmpDir(t);
    const engine = await startNode(t, dir, 'engine-1', { overrides: { http: { api_keys: `${API_KEY},second-key-that-is-long-enough` } } });
    const base = `http://${engine.config.http!.runtime}`;
    const waiting = await fetch(`${base}/health/ready`);
    assert.equal(waiting.status, 503);
    assert.deepEqual(((await waiting.json()) as { reasons: string[] }).reasons, ['waiting for the configuration from the console']);
    await startNode(t, dir, 'console', { role: 'console', peers: engine.address });
    await waitUntil(async () => (await fetch(`${base}/health/ready`)).status, (s) => s === 200, 10_000, 50);
    const created = await call(base, 'POST', '/runtime/v1/sessions', { subject: 'alice' });
    assert.equal(created.status, 201);
    assert.equal((await call(base, 'GET', `/runtime/v1/sessions/${created.json.id}`)).json.subject, 'alice');
    assert.equal((await call(base, 'GET', `/runtime/v1/sessions/${created.json.id}`, undefined, 'second-key-that-is-long-enough')).status, 200);
    const refused = await call(base, 'GET', `/runtime/v1/sessions/${created.json.id}`, undefined, 'wrong-key-wrong-key-wrong');
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error.code, 'AUTH_INVALID_CREDENTIAL');
    assert.doesNotMatch(engine.proc.stdout(), new RegExp(API_KEY), 'the key is never logged');
  });

  it('two engines on the Redis provider share sessions, revocations and replay ids', async (t) => {
    const url = await redisUrlOrSkip(t);
    if (!url) return;
    const dir = tmpDir(t);
    // A cluster id of its own, so its keys (prefixed with it) never meet another run's.
    const clusterId = `e2e-${randomBytes(4).toString('hex')}`;
    const state = { provider: 'redis', redis_url: url };
    const a = await startNode(t, dir, 'engine-a', { overrides: { cluster: { id: clusterId }, state, http: { api_keys: API_KEY } } });
    const b = await startNode(t, dir, 'engine-b', { peers: a.address, overrides: { cluster: { id: clusterId }, state, http: { api_keys: API_KEY } } });
    const baseA = `http://${a.config.http!.runtime}`;
    const baseB = `http://${b.config.http!.runtime}`;
    const s = (await call(baseA, 'POST', '/runtime/v1/sessions', { subject: 'bob', attributes: { tier: 'gold' } })).json;
    assert.deepEqual((await call(baseB, 'GET', `/runtime/v1/sessions/${s.id}`)).json.attributes, { tier: 'gold' });
    assert.equal((await call(baseB, 'DELETE', `/runtime/v1/sessions/${s.id}`)).status, 204);
    assert.equal((await call(baseA, 'GET', `/runtime/v1/sessions/${s.id}`)).status, 404);
    const verdicts = await Promise.all([baseA, baseB].map((base) => call(base, 'POST', '/runtime/v1/replay', { id: 'assertion-42', ttlSeconds: 60 })));
    assert.deepEqual(verdicts.map((v) => v.status).sort(), [201, 409]);
  });
});
