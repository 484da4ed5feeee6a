/** Rpc over the real encrypted transport on loopback. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/core/clock.js';
import { isCohortError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { Rpc } from '../../src/rpc/rpc.js';
import { TransportMux } from '../../src/transport/mux.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { Secret } from '../../src/config/secret.js';
import type { TestContext } from 'node:test';

async function rpcNode(t: TestContext, id: string): Promise<{ rpc: Rpc; transport: TcpTransport; address: string }> {
  const transport = new TcpTransport({
    clusterId: 'rpc-test', nodeId: id, bind: { host: '127.0.0.1', port: 0 }, secret: new Secret('rpc-test-secret'), clock: systemClock, logger: silentLogger(),
  });
  const mux = new TransportMux(transport);
  // Generous: a 4 MiB body on a machine busy with other tests may take seconds; the test's
  // point about time is that a lost peer fails a call at once, not at its timeout.
  const rpc = new Rpc({ mux, clock: systemClock, logger: silentLogger(), timeoutMs: 30_000 });
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
});
