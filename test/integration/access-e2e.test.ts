/**
 * Access decisions on real processes: an `apis` document saved on the console reaches the
 * engine's doors, a gateway key issued by the console opens them (and not the runtime API),
 * and denies are written to the engine's log.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNode, waitUntil } from '../helpers/cluster.js';
import { tmpDir } from '../helpers/tmp.js';

const API_KEY = 'e2e-access-api-key-0123456789abcdef';

describe('access decisions on real engines', () => {
  it('follow the apis section saved on the console; a console-issued gateway key opens the doors only', async (t) => {
    const dir = tmpDir(t);
    const engine = await startNode(t, dir, 'engine-1', { overrides: { http: { api_keys: API_KEY } } });
    const consoleNode = await startNode(t, dir, 'console', { role: 'console', peers: engine.address });
    const runtime = `http://${engine.config.http!.runtime}`;
    const admin = `http://${consoleNode.config.http!.admin}`;
    await waitUntil(async () => (await fetch(`${runtime}/health/ready`)).status, (s) => s === 200, 15_000, 50);

    const password = readFileSync(join(dir, 'console', 'admin-password'), 'utf8').trim();
    const login = await fetch(`${admin}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password }) });
    const token = ((await login.json()) as { token: string }).token;
    const asAdmin = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const saved = await fetch(`${admin}/admin/v1/config/apis`, { method: 'PUT', headers: asAdmin, body: JSON.stringify({ apis: [{ id: 'orders', pathPrefix: '/orders', denyList: ['ip:203.0.113.0/24'] }] }) });
    assert.equal(saved.status, 200);

    const session = (await (await fetch(`${runtime}/runtime/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ subject: 'erin' }) })).json()) as { id: string };
    const forward = (key: string, extra: Record<string, string> = {}) => fetch(`${runtime}/authz/forward`, {
      headers: { 'x-cohort-key': key, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/orders/5', 'x-forwarded-for': '192.0.2.9', cookie: `cohort_session=${session.id}`, ...extra },
    });
    // Before the document arrives the request matches no API (403); then it is allowed.
    const { value: allowed } = await waitUntil(() => forward(API_KEY), (r) => r.status === 200, 10_000, 50);
    assert.equal(allowed.headers.get('x-cohort-subject'), 'erin');
    assert.equal(allowed.headers.get('x-cohort-reason'), 'ACCESS_ALLOWED');
    const denied = await forward(API_KEY, { 'x-forwarded-for': '203.0.113.7' });
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.get('x-cohort-reason'), 'ACCESS_DENIED_ADDRESS');
    const id = denied.headers.get('x-cohort-decision-id')!;
    await waitUntil(async () => engine.proc.stdout(), (out) => out.includes(id), 5000, 50);
    const line = JSON.parse(engine.proc.stdout().split('\n').find((l) => l.includes(id))!) as Record<string, unknown>;
    assert.equal(line.msg, 'access decision');
    assert.equal(line.engine, 'engine-1');
    assert.equal(line.reason, 'ACCESS_DENIED_ADDRESS');

    const issued = await fetch(`${admin}/admin/v1/api-keys`, { method: 'POST', headers: asAdmin, body: JSON.stringify({ name: 'edge', scope: 'gateway' }) });
    const gatewayKey = ((await issued.json()) as { key: string }).key;
    await waitUntil(() => forward(gatewayKey), (r) => r.status === 200, 10_000, 50);
    const runtimeWithGatewayKey = await fetch(`${runtime}/runtime/v1/sessions/${session.id}`, { headers: { authorization: `Bearer ${gatewayKey}` } });
    assert.equal(runtimeWithGatewayKey.status, 401);
  });
});
