/**
 * `[state] read_local_only` with real processes: a console and two engines, engine-1 with
 * `read_local_only = false`, engine-2 with the default. Cut off from the console and the other
 * engine (SIGSTOP), an engine cannot hear from enough engines to be sure nothing was revoked
 * elsewhere: engine-1 answers a revocation check it cannot answer from its own copy with 503
 * STATE_UNAVAILABLE (it fails closed), while engine-2 answers from its own copy. A revocation
 * its own copy holds is answered at once by both.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil, type TestNode } from '../helpers/cluster.js';
import { alive } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

const API_KEY = 'read-local-only-e2e-key-0123456789';

function runtimeOf(n: TestNode): string {
  return `http://${n.config.http!.runtime!}`;
}

async function revocation(n: TestNode, id: string): Promise<{ status: number; body: { revoked?: boolean; error?: { code: string } } }> {
  const r = await fetch(`${runtimeOf(n)}/runtime/v1/revocations/${id}`, { headers: { authorization: `Bearer ${API_KEY}` }, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: (await r.json()) as { revoked?: boolean; error?: { code: string } } };
}

async function writesAccepted(n: TestNode): Promise<boolean | undefined> {
  const r = await fetch(`${runtimeOf(n)}/health/ready`, { signal: AbortSignal.timeout(5000) });
  return ((await r.json()) as { writes?: { accepted: boolean } }).writes?.accepted;
}

describe('read_local_only with real processes', () => {
  it('an engine with read_local_only = false that cannot hear from a majority fails its revocation checks closed; one with the default answers from its own copy', async (t) => {
    const dir = tmpDir(t, 'cohort-read-local-');
    const consoleNode = await startNode(t, dir, 'console', { role: 'console' });
    const http = { api_keys: API_KEY };
    const e1 = await startNode(t, dir, 'engine-1', { peers: consoleNode.address, overrides: { http, state: { read_local_only: 'false' } } });
    const e2 = await startNode(t, dir, 'engine-2', { peers: consoleNode.address, overrides: { http } });
    const stopped: TestNode[] = [];
    t.after(() => {
      for (const n of stopped) if (alive(n.proc.pid)) process.kill(n.proc.pid, 'SIGCONT');
    });
    for (const e of [e1, e2]) await waitUntil(() => fetch(`${runtimeOf(e)}/health/ready`).then((r) => r.status), (s) => s === 200, 60_000, 50);
    const revoked = await fetch(`${runtimeOf(e2)}/runtime/v1/revocations`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'token-a' }) });
    assert.equal(revoked.status, 204);
    for (const e of [e1, e2]) {
      assert.deepEqual(await revocation(e, 'token-a'), { status: 200, body: { revoked: true } });
      assert.deepEqual(await revocation(e, 'token-b'), { status: 200, body: { revoked: false } });
    }

    // Each engine cut off in turn: the console and the other engine stopped.
    const cutOff = async (engine: TestNode, others: TestNode[]): Promise<void> => {
      for (const n of others) {
        process.kill(n.proc.pid, 'SIGSTOP');
        stopped.push(n);
      }
      await waitUntil(() => writesAccepted(engine), (a) => a === false, 30_000, 50);
    };
    const reconnect = async (engine: TestNode): Promise<void> => {
      for (const n of stopped.splice(0)) process.kill(n.proc.pid, 'SIGCONT');
      await waitUntil(() => writesAccepted(engine), (a) => a === true, 30_000, 50);
    };

    await cutOff(e1, [consoleNode, e2]);
    const closed = await revocation(e1, 'token-b');
    assert.equal(closed.status, 503, JSON.stringify(closed.body));
    assert.equal(closed.body.error?.code, 'STATE_UNAVAILABLE');
    assert.deepEqual(await revocation(e1, 'token-a'), { status: 200, body: { revoked: true } }, 'its own copy holds it');
    await reconnect(e1);
    await waitUntil(() => revocation(e1, 'token-b'), (r) => r.status === 200 && r.body.revoked === false, 30_000, 50);

    await cutOff(e2, [consoleNode, e1]);
    assert.deepEqual(await revocation(e2, 'token-b'), { status: 200, body: { revoked: false } }, 'read_local_only = true: its own copy answers');
    assert.deepEqual(await revocation(e2, 'token-a'), { status: 200, body: { revoked: true } });
    await reconnect(e2);
  });
});
