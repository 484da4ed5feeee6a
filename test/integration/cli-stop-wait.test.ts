import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { TestContext } from 'node:test';
import { portState, waitUntilStopped, type StoppingNode } from '../../src/cli/stop-wait.js';

/** A listening port standing for a node's cluster port; closed by the test or when it ends. */
async function listener(t: Pick<TestContext, 'after'>): Promise<{ server: Server; address: string }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())));
  const { port } = server.address() as { port: number };
  return { server, address: `127.0.0.1:${port}` };
}

describe('cohort cluster stop: waiting for the nodes', () => {
  it('tells a listening cluster port from a closed one', async (t) => {
    const { server, address } = await listener(t);
    assert.equal(await portState(address), 'open');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.equal(await portState(address), 'closed');
  });

  it('reports each node as its port closes, and returns those still listening when the timeout passes', async (t) => {
    const quick = await listener(t);
    const stuck = await listener(t);
    const nodes: StoppingNode[] = [
      { id: 'engine-1', address: quick.address },
      { id: 'engine-2', address: stuck.address },
    ];
    setTimeout(() => quick.server.close(), 300);
    const stopped: string[] = [];
    const left = await waitUntilStopped(nodes, 2000, (n) => stopped.push(n.id));
    assert.deepEqual(stopped, ['engine-1']);
    assert.deepEqual(left.map((n) => n.id), ['engine-2']);
  });

  it('returns at once when every node has stopped', async (t) => {
    const { server, address } = await listener(t);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const started = performance.now();
    const left = await waitUntilStopped([{ id: 'console', address }], 60_000, () => undefined);
    assert.deepEqual(left, []);
    assert.ok(performance.now() - started < 30_000, 'did not wait for the timeout');
  });
});
