/** Rpc over the real encrypted transport on loopback. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { isCohortError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { Rpc } from '../../src/rpc/rpc.js';
import { TransportMux } from '../../src/transport/mux.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { Secret } from '../../src/config/secret.js';
import type { TestContext } from 'node:test';

async function rpcNode(t: TestContext, id: string, rpcClock: Clock = systemClock, timeoutMs = 30_000): Promise<{ rpc: Rpc; transport: TcpTransport; address: string }> {
  const transport = new TcpTransport({
    clusterId: 'rpc-test', nodeId: id, bind: { host: '127.0.0.1', port: 0 }, secret: new Secret('rpc-test-secret'), clock: systemClock, logger: silentLogger(),
  });
  const mux = new TransportMux(transport);
  // Generous: a 4 MiB body on a machine busy with other tests may take seconds; the test's
  // point about time is that a lost peer fails a call at once, not at its timeout.
  const rpc = new Rpc({ mux, clock: rpcClock, logger: silentLogger(), timeoutMs });
  t.after(async () => {
    rpc.close();
    await transport.close();
  });
  await transport.start(mux.handlers());
  return { rpc, transport, address: transport.localAddress };
}

describe('rpc over TCP', () => {
  it('answers thousands of pipelined calls, large bodies on the bulk channel, and fails fast when the peer goes away', async (t) => {
    const a = await rpcNode(t, 'a');
    const b = await rpcNode(t, 'b');
    b.rpc.handle('add', (body) => (body as { x: number; y: number }).x + (body as { x: number; y: number }).y);
    b.rpc.handle('size', (body) => (body as string).length);

    const sums = await Promise.all(Array.from({ length: 5000 }, (_, i) => a.rpc.call<number>(b.address, 'add', { x: i, y: 1 })));
    assert.deepEqual(sums, Array.from({ length: 5000 }, (_, i) => i + 1));

    const big = 'x'.repeat(4 * 1024 * 1024);
    assert.equal(await a.rpc.call(b.address, 'size', big, { channel: 'bulk' }), big.length);

    b.rpc.handle('never', () => new Promise(() => undefined));
    const pending = a.rpc.call(b.address, 'never', null, { timeoutMs: 10_000 });
    const rejected = assert.rejects(pending, (err) => isCohortError(err, 'RPC_PEER_UNREACHABLE'));
    const started = performance.now();
    await b.transport.close();
    await rejected;
    assert.ok(performance.now() - started < 2000, 'failed when the connection closed, not at the timeout');
  });

  it('takes an answer that arrived while the caller was held up past its timeout, rather than timing the call out', async (t) => {
    // Both nodes share this process. The answering node's batches leave in a `soon` callback;
    // right after the answer leaves, the whole process is held up (busy) for longer than the
    // call's timeout, as a machine busy with other work can hold a node. When the loop runs
    // again, the caller's timer is due before its socket is read, with the answer in it.
    let holdAfterSendMs = 0;
    const holdingClock: Clock = {
      ...systemClock,
      soon(fn) {
        setImmediate(() => {
          fn();
          const until = performance.now() + holdAfterSendMs;
          holdAfterSendMs = 0;
          while (performance.now() < until) {
            // held up
          }
        });
      },
    };
    const a = await rpcNode(t, 'a', systemClock, 300);
    const b = await rpcNode(t, 'b', holdingClock);
    b.rpc.handle('late', () => new Promise((resolve) => setTimeout(() => {
      holdAfterSendMs = 800;
      resolve('answered');
    }, 100)));
    assert.equal(await a.rpc.call(b.address, 'echo-ready', null, { timeoutMs: 30_000 }).catch(() => 'no handler'), 'no handler', 'the connection is open before the timed call');
    const started = performance.now();
    assert.equal(await a.rpc.call(b.address, 'late', null), 'answered');
    assert.ok(performance.now() - started >= 800, 'the process was held up past the timeout');
    // A call that gets no answer still ends at its timeout.
    b.rpc.handle('never', () => new Promise(() => undefined));
    await assert.rejects(a.rpc.call(b.address, 'never', null), (err) => isCohortError(err, 'RPC_TIMEOUT'));
  });
});
