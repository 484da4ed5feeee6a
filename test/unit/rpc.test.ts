import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError, isCohortError, type ErrorCode } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import { quorumSize, Rpc } from '../../src/rpc/rpc.js';
import { SimNetwork } from '../../src/sim/sim-network.js';
import { ProtocolId, TransportMux } from '../../src/transport/mux.js';

const TIMEOUT = 500;

/** Three nodes with an Rpc each on a simulated network (0.5-1 ms one way), one clock. */
async function rpcCluster(n = 3) {
  const clock = new ManualClock(1_000_000);
  const network = new SimNetwork(clock, seededRandom(3));
  const nodes = [];
  for (let i = 0; i < n; i++) {
    const address = `10.0.0.${i + 1}:7000`;
    const { clock: nodeClock, transport } = network.addNode(`n${i}`, address);
    const mux = new TransportMux(transport);
    const rpc = new Rpc({ mux, clock: nodeClock, logger: silentLogger(), timeoutMs: TIMEOUT });
    await transport.start(mux.handlers());
    nodes.push({ address, rpc, mux });
  }
  for (const node of nodes) node.rpc.handle('echo', (body, from) => ({ body, from: from.nodeId }));
  /** Advances simulated time until `promise` settles (or `limitMs` passes) and returns its outcome. */
  const settle = async <T>(promise: Promise<T>, limitMs = 5000): Promise<{ value?: T; error?: CohortError; at: number }> => {
    const start = clock.now();
    let outcome: { value?: T; error?: CohortError } | undefined;
    promise.then((value) => (outcome = { value }), (error: CohortError) => (outcome = { error }));
    while (!outcome && clock.now() - start < limitMs) {
      clock.advance(1);
      await Promise.resolve();
      await Promise.resolve();
    }
    assert.ok(outcome, 'the promise settled');
    return { ...outcome, at: clock.now() - start };
  };
  return { clock, network, nodes, settle };
}

function expectCode(error: CohortError | undefined, code: ErrorCode): void {
  assert.ok(isCohortError(error), `expected ${code}, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
}

describe('rpc: calls', () => {
  it('answers with the handler\'s value, sync or async, and names the caller', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    b!.rpc.handle('slow', async (body) => ({ doubled: (body as number) * 2 }));
    assert.deepEqual((await settle(a!.rpc.call(b!.address, 'echo', { x: 1 }))).value, { body: { x: 1 }, from: 'n0' });
    assert.deepEqual((await settle(a!.rpc.call(b!.address, 'slow', 21))).value, { doubled: 42 });
    assert.equal(a!.rpc.inFlight, 0);
  });

  it('keeps many calls in flight on one connection and matches every answer to its call', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    const calls = Array.from({ length: 200 }, (_, i) => a!.rpc.call<{ body: number }>(b!.address, 'echo', i));
    const answers = await settle(Promise.all(calls));
    assert.deepEqual(answers.value!.map((r) => r.body), Array.from({ length: 200 }, (_, i) => i));
  });

  it('sends the calls of one turn to a peer as one batch, and the answers come back as one', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    const frames = (node: typeof a) => {
      const sent: string[] = [];
      const transport = node!.mux.transport;
      const send = transport.send.bind(transport);
      transport.send = (to, channel, payload) => {
        sent.push(Buffer.from(payload).toString('utf8', 1));
        send(to, channel, payload);
      };
      return sent;
    };
    const fromA = frames(a);
    const fromB = frames(b);
    const calls = Array.from({ length: 50 }, (_, i) => a!.rpc.call<{ body: number }>(b!.address, 'echo', i));
    assert.equal(fromA.length, 0, 'nothing leaves before the end of the turn');
    const answers = await settle(Promise.all(calls));
    assert.deepEqual(answers.value!.map((r) => r.body), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(fromA.length, 1, 'one frame carried the 50 calls');
    assert.ok(fromA[0]!.startsWith('\u0002['));
    assert.equal(fromB.length, 1, 'one frame carried the 50 answers');
    // A lone call is sent as a plain message.
    await settle(a!.rpc.call(b!.address, 'echo', 'alone'));
    assert.ok(fromA[1]!.startsWith('{'), fromA[1]);
  });

  it('carries a handler\'s CohortError code back; other failures become RPC_REMOTE_FAILED without their message', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    b!.rpc.handle('refuse', () => {
      throw new CohortError('CLUSTER_NODE_ACTIVE', 'no way');
    });
    b!.rpc.handle('crash', async () => {
      throw new Error('internal detail /etc/secret');
    });
    const refused = await settle(a!.rpc.call(b!.address, 'refuse', null));
    expectCode(refused.error, 'CLUSTER_NODE_ACTIVE');
    assert.match(refused.error!.message, /n1 .*no way/);
    const crashed = await settle(a!.rpc.call(b!.address, 'crash', null));
    expectCode(crashed.error, 'RPC_REMOTE_FAILED');
    assert.doesNotMatch(crashed.error!.message, /secret/);
    expectCode((await settle(a!.rpc.call(b!.address, 'no-such-method', null))).error, 'RPC_NO_HANDLER');
  });

  it('times out after rpc_timeout when the peer is silent, and fails at once when its process is gone', async () => {
    const { nodes, network, settle } = await rpcCluster();
    const [a, b, c] = nodes;
    network.pause(b!.address);
    const silent = await settle(a!.rpc.call(b!.address, 'echo', 1));
    expectCode(silent.error, 'RPC_TIMEOUT');
    assert.ok(silent.at >= TIMEOUT && silent.at <= TIMEOUT + 2, `timed out after ${silent.at} ms`);
    const custom = await settle(a!.rpc.call(b!.address, 'echo', 1, { timeoutMs: 50 }));
    assert.ok(custom.at >= 50 && custom.at <= 52);

    // c has talked to a, so a learns of its crash from the closed connection.
    await settle(a!.rpc.call(c!.address, 'echo', 1));
    const pending = a!.rpc.call(c!.address, 'echo', 2);
    network.crash(c!.address);
    const gone = await settle(pending);
    expectCode(gone.error, 'RPC_PEER_UNREACHABLE');
    assert.ok(gone.at < 10, `failed after ${gone.at} ms, not at the timeout`);
  });

  it('ends at once, as timed out, the bulk calls in flight to a peer this node disconnects (a member declared dead, perhaps only slow); a control call gets its answer over a new connection', async () => {
    const { nodes, network, settle } = await rpcCluster();
    const [a, b] = nodes;
    await settle(a!.rpc.call(b!.address, 'echo', 1));
    network.pause(b!.address);
    const transfer = a!.rpc.call(b!.address, 'echo', 2, { channel: 'bulk', timeoutMs: 60_000 });
    const control = a!.rpc.call(b!.address, 'echo', 3, { timeoutMs: 60_000 });
    a!.mux.disconnect(b!.address);
    const cut = await settle(transfer);
    expectCode(cut.error, 'RPC_TIMEOUT');
    assert.ok(cut.at < 10, `ended after ${cut.at} ms, not at the call's timeout`);
    assert.equal(a!.rpc.inFlight, 1, 'the control call still waits');
    network.resume(b!.address);
    assert.deepEqual((await settle(control)).value, { body: 3, from: 'n0' });
    assert.deepEqual((await settle(a!.rpc.call(b!.address, 'echo', 4, { channel: 'bulk' }))).value, { body: 4, from: 'n0' });
  });

  it('close() fails every call in flight with RPC_CLOSED and refuses new ones', async () => {
    const { nodes, network, settle } = await rpcCluster();
    const [a, b] = nodes;
    network.pause(b!.address);
    const pending = a!.rpc.call(b!.address, 'echo', 1);
    a!.rpc.close();
    expectCode((await settle(pending)).error, 'RPC_CLOSED');
    expectCode((await settle(a!.rpc.call(b!.address, 'echo', 1))).error, 'RPC_CLOSED');
    assert.equal(a!.rpc.inFlight, 0);
  });

  it('drops malformed messages and answers from nodes that were not asked, counting them', async () => {
    const { nodes, network, settle } = await rpcCluster();
    const [a, b, c] = nodes;
    network.pause(b!.address);
    const pending = a!.rpc.call(b!.address, 'echo', 'x');
    // c forges an answer to a's call id 1; a ignores it because the call went to b.
    c!.mux.send(ProtocolId.Rpc, a!.address, 'control', Buffer.from(JSON.stringify({ k: 2, id: 1, b: 'forged' })));
    c!.mux.send(ProtocolId.Rpc, a!.address, 'control', Buffer.from('not json'));
    c!.mux.send(ProtocolId.Rpc, a!.address, 'control', Buffer.from(JSON.stringify({ k: 9 })));
    // Batches: not JSON, not an array (each dropped whole), and one bad message among good ones.
    c!.mux.send(ProtocolId.Rpc, a!.address, 'control', Buffer.from('\u0002[{"k":0,'));
    c!.mux.send(ProtocolId.Rpc, a!.address, 'control', Buffer.from('\u0002{"k":0}'));
    let echoed = 0;
    a!.rpc.handle('count', () => ++echoed);
    c!.mux.send(ProtocolId.Rpc, a!.address, 'control', Buffer.from('\u0002[{"k":1,"m":"count"},7,{"k":1,"m":"count"}]'));
    network.resume(b!.address);
    const answered = await settle(pending);
    assert.deepEqual(answered.value, { body: 'x', from: 'n0' });
    assert.equal(a!.rpc.stats.malformedDropped, 5);
    assert.equal(echoed, 2, 'the good messages of a batch are served');
  });
});

describe('rpc: fan-out', () => {
  it('quorum sizes', () => {
    const table: Array<[Parameters<typeof quorumSize>[0], number, number]> = [
      ['majority', 1, 1], ['majority', 2, 2], ['majority', 3, 2], ['majority', 4, 3], ['majority', 5, 3],
      ['all', 3, 3], ['all', 0, 0], [2, 3, 2], [5, 3, 3], [-1, 3, 0],
    ];
    for (const [q, n, expected] of table) assert.equal(quorumSize(q, n), expected, `${q} of ${n}`);
  });

  it('settles with a majority as soon as it has one, and fails as soon as it cannot have one', async () => {
    const { nodes, network, settle } = await rpcCluster(4);
    const [a, b, c, d] = nodes;
    network.pause(d!.address);
    const targets = [b!.address, c!.address, d!.address];
    const majority = await settle(a!.rpc.fanOut(targets, 'echo', 1, 'majority'));
    assert.equal(majority.value!.ok.length, 2);
    assert.ok(majority.at < 10, 'did not wait for the silent node');

    const all = await settle(a!.rpc.fanOut(targets, 'echo', 1, 'all'));
    expectCode(all.error, 'RPC_QUORUM_FAILED');
    assert.ok(all.at >= TIMEOUT, 'failed when the silent node timed out');

    network.pause(c!.address);
    const none = await settle(a!.rpc.fanOut(targets, 'echo', 1, 'majority'));
    expectCode(none.error, 'RPC_QUORUM_FAILED');
    assert.match(none.error!.message, /1 of 3 nodes answered, 2 needed/);
  });
});
