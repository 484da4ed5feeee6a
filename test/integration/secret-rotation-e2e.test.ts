/**
 * Rotating the cluster secret on a live cluster, one node at a time: first every node moves to
 * the new `secret_key` keeping the old one in `previous_secret_keys`, then every node drops the
 * old one. Real processes (console + 2 engines, the engines' own transport); a steady load of
 * session writes and reads goes to the engines not being restarted. No node is refused at any
 * point, no request fails, every session written is still there at the end.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, clusterInfoOf, stateOf, waitUntil, type TestNode } from '../helpers/cluster.js';
import { TEST_SECRET, writeConfig } from '../helpers/node-config.js';
import { runCohort, suiteCleanups } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

const API_KEY = 'rotation-test-api-key-0123456789';
const NEW_SECRET = 'the-new-cluster-secret-after-rotation-42';

describe('secret rotation on a live cluster', () => {
  it('moves every node to a new secret and then drops the old one: no node refused, no request failed', { timeout: 240_000 }, async (t) => {
    const dir = tmpDir(t);
    const suite = suiteCleanups((fn) => t.after(fn));
    const overrides = { http: { api_keys: API_KEY } };
    const console_ = await startNode(suite, dir, 'console', { role: 'console', overrides });
    const nodes: TestNode[] = [console_];
    for (const id of ['engine-1', 'engine-2']) nodes.push(await startNode(suite, dir, id, { peers: console_.address, overrides }));
    const engines = () => nodes.filter((n) => n.id.startsWith('engine'));
    const allActive = async (file: string) => {
      const info = await clusterInfoOf(file);
      return nodes.every((n) => stateOf(info, n.id) === 'active');
    };
    await waitUntil(() => allActive(console_.file), (ok) => ok, 30_000, 100);

    // The steady load: create a session on one serving engine, read it back through the other
    // (or the same one while the other restarts); every session created is read again at the end.
    let restarting: string | undefined;
    let sent = 0;
    const failures: string[] = [];
    const created: Array<{ id: string; subject: string }> = [];
    let running = true;
    const runtimeOf = (n: TestNode) => `http://${n.config.http!.runtime}`;
    const call = async (n: TestNode, method: string, path: string, body?: unknown) => {
      sent++;
      try {
        const r = await fetch(`${runtimeOf(n)}${path}`, {
          method,
          headers: { authorization: `Bearer ${API_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await r.text();
        if (r.status >= 300) failures.push(`${method} ${path} on ${n.id}: ${r.status} ${text.slice(0, 200)}`);
        return r.status < 300 ? (JSON.parse(text) as { id: string; subject: string }) : undefined;
      } catch (err) {
        failures.push(`${method} ${path} on ${n.id}: ${(err as Error).message}`);
        return undefined;
      }
    };
    // What a load balancer does before it takes an engine out: lets the requests in flight end.
    let iteration: Promise<void> = Promise.resolve();
    let iterationDone: () => void = () => {};
    const load = (async () => {
      let i = 0;
      while (running) {
        iteration = new Promise((r) => (iterationDone = r));
        const serving = engines().filter((n) => n.id !== restarting);
        const writer = serving[i % serving.length]!;
        const reader = serving[(i + 1) % serving.length]!;
        const session = await call(writer, 'POST', '/runtime/v1/sessions', { subject: `user-${i}` });
        if (session) {
          created.push(session);
          await call(reader, 'GET', `/runtime/v1/sessions/${session.id}`);
        }
        i++;
        iterationDone();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const earlierLogs: string[] = [];
    const restartWith = async (node: TestNode, cluster: Record<string, string>) => {
      restarting = node.id;
      await iteration;
      node.proc.child.kill('SIGTERM');
      const exit = await node.proc.exited;
      earlierLogs.push(node.proc.stdout());
      assert.equal(exit.code, 0, `${node.id} stopped gracefully: ${node.proc.stderr()}`);
      node.config.cluster = { ...node.config.cluster!, ...cluster };
      if (cluster.previous_secret_keys === '') delete node.config.cluster.previous_secret_keys;
      writeConfig(dir, `${node.id}.ini`, node.config);
      node.proc = runCohort(suite, ['start', '-c', node.file]);
      await node.proc.waitForOutput(new RegExp(`"msg":"\\w+ ${node.id} started"`), 30_000);
      const other = nodes.find((n) => n !== node)!;
      await waitUntil(() => allActive(other.file), (ok) => ok, 30_000, 100);
      // Engines wait for a configuration and their partitions before serving.
      if (node.id.startsWith('engine')) {
        await waitUntil(async () => (await fetch(`${runtimeOf(node)}/health/ready`)).status, (s) => s === 200, 30_000, 100);
      }
      restarting = undefined;
    };

    const started = performance.now();
    for (const node of nodes) await restartWith(node, { secret_key: NEW_SECRET, previous_secret_keys: TEST_SECRET });
    const midway = created.length;
    for (const node of nodes) await restartWith(node, { secret_key: NEW_SECRET, previous_secret_keys: '' });
    running = false;
    await load;

    // Everything written is still readable, through either engine.
    for (const [i, s] of created.entries()) {
      const got = await call(engines()[i % 2]!, 'GET', `/runtime/v1/sessions/${s.id}`);
      assert.equal(got?.subject, s.subject);
    }
    const refusals = [...earlierLogs, ...nodes.map((n) => n.proc.stdout())].flatMap((log) => log.split('\n').filter((l) => /refused connection|refused the handshake|TRANSPORT_REFUSED/.test(l)));
    console.log(
      `secret rotation: 6 restarts in ${((performance.now() - started) / 1000).toFixed(1)} s; ${sent} requests sent, ${failures.length} failed; ` +
        `${created.length} sessions written (${midway} before the old secret was dropped), all read back; ${refusals.length} refusals logged`,
    );
    assert.deepEqual(refusals, []);
    assert.deepEqual(failures, []);
    assert.ok(created.length > 10, 'the load ran');
  });
});
