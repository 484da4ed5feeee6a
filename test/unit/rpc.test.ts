import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError, isCohortError, type ErrorCode } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import fc from 'fast-check';
import { COMPACT_MARK, compactBatchHeader, decodeCompactBatch, encodeCompact } from '../../src/rpc/compact-codec.js';
import { quorumSize, RawText, Rpc } from '../../src/rpc/rpc.js';
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

  it('sends record lines given in pieces as one text, multi-byte characters at the seams included', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    b!.rpc.handle('lines', (body) => (body instanceof RawText ? body.text : 'not record lines'));
    a!.rpc.handle('pieces', () => new RawText(['é', 'line one\n€', '', '😀 two\n', 'ß']));
    const pieces = ['first\t€', '', 'ü\n', '😀', 'last'];
    assert.equal((await settle(a!.rpc.call(b!.address, 'lines', new RawText(pieces)))).value, pieces.join(''));
    const answer = (await settle(b!.rpc.call<RawText>(a!.address, 'pieces', {}))).value;
    assert.ok(answer instanceof RawText);
    assert.equal(answer.text, 'éline one\n€😀 two\nß');
    assert.equal(new RawText(['a', 'b']).text, 'ab');
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

describe('rpc: compact (MessagePack) messages', () => {
  /** What `node` sends: each frame's form (`json`, `batch`, `compact`) and raw bytes. */
  const recordFrames = (node: { mux: TransportMux }) => {
    const sent: Array<{ form: string; bytes: Buffer }> = [];
    const transport = node.mux.transport;
    const send = transport.send.bind(transport);
    transport.send = (to, channel, payload) => {
      const bytes = Buffer.from(payload).subarray(1);
      sent.push({ form: bytes[0] === COMPACT_MARK ? 'compact' : bytes[0] === 0x02 ? 'batch' : 'json', bytes });
      send(to, channel, payload);
    };
    return sent;
  };
  const record = { json: JSON.stringify([{ note: 'quotes " and \\ and ünïcödé ✓', n: [1, 2.5, null] }, 1764860000000, 1764860000000, 1_800_000, 28_800_000]), expiresAt: 1764890000000, version: 1764860000000123, partition: 42, index: 'subject-1' };

  it('sends the methods marked compact as MessagePack both ways, with the same values JSON would give, and keeps other methods in JSON', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    for (const node of [a!, b!]) {
      node.rpc.compact('store');
      node.rpc.handle('store', (body) => ({ got: body, when: 1764860000000123, nothing: undefined, list: [1, undefined, 'x'] }));
    }
    const fromA = recordFrames(a!);
    const fromB = recordFrames(b!);
    const body = { partition: 42, changes: [{ ns: 'session', key: 's1', record, ifVersion: undefined }] };
    const answer = (await settle(a!.rpc.call(b!.address, 'store', body))).value;
    assert.deepEqual(answer, JSON.parse(JSON.stringify({ got: body, when: 1764860000000123, nothing: undefined, list: [1, undefined, 'x'] })));
    assert.deepEqual(fromA.map((f) => f.form), ['compact']);
    assert.deepEqual(fromB.map((f) => f.form), ['compact']);
    assert.ok(fromA[0]!.bytes.includes(Buffer.from(record.json)), 'the record\'s JSON text travels as it is, unescaped');
    await settle(a!.rpc.call(b!.address, 'echo', 'plain'));
    assert.deepEqual(fromA.map((f) => f.form), ['compact', 'json'], 'a method not marked compact stays JSON');
    // A handler's CohortError comes back with its code in the compact form too.
    b!.rpc.compact('refuse');
    a!.rpc.compact('refuse');
    b!.rpc.handle('refuse', () => {
      throw new CohortError('STATE_NOT_REPLICATED', 'not now');
    });
    expectCode((await settle(a!.rpc.call(b!.address, 'refuse', {}))).error, 'STATE_NOT_REPLICATED');
    assert.equal(fromB.at(-1)!.form, 'compact');
  });

  it('keeps the order of one turn\'s messages to a peer across both forms, batching consecutive ones of a form', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    const arrived: number[] = [];
    for (const node of [a!, b!]) {
      node.rpc.compact('packed');
      node.rpc.handle('packed', (n) => void arrived.push(n as number));
      node.rpc.handle('plain', (n) => void arrived.push(n as number));
    }
    const fromA = recordFrames(a!);
    for (let i = 0; i < 12; i++) a!.rpc.notify(b!.address, i % 6 < 3 ? 'packed' : 'plain', i);
    // Sent last, in the last JSON batch: once it is answered, everything before it was served.
    const last = a!.rpc.call(b!.address, 'echo', 'last');
    await settle(last);
    assert.deepEqual(arrived, Array.from({ length: 12 }, (_, i) => i));
    assert.deepEqual(fromA.map((f) => f.form), ['compact', 'batch', 'compact', 'batch']);
  });

  it('sends JSON to a peer whose connection agreed on protocol 2 (an older node in a rolling upgrade)', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, b] = nodes;
    for (const node of [a!, b!]) {
      node.rpc.compact('store');
      node.rpc.handle('store', (body) => body);
    }
    a!.mux.transport.protocolTo = () => 2;
    const fromA = recordFrames(a!);
    const fromB = recordFrames(b!);
    assert.deepEqual((await settle(a!.rpc.call(b!.address, 'store', { record }))).value, { record });
    assert.deepEqual(fromA.map((f) => f.form), ['json']);
    assert.deepEqual(fromB.map((f) => f.form), ['compact'], 'b reads compact and a, of this build, too');
  });

  it('drops malformed compact batches whole, and a bad message of a good batch alone, counting them', async () => {
    const { nodes, settle } = await rpcCluster();
    const [a, c] = [nodes[0]!, nodes[2]!];
    let served = 0;
    a.rpc.handle('count', () => ++served);
    const batch = (...messages: Uint8Array[]) => Buffer.concat([compactBatchHeader(messages.length), ...messages]);
    const raw = (bytes: Uint8Array) => c.mux.send(ProtocolId.Rpc, a.address, 'control', bytes);
    raw(Buffer.from([COMPACT_MARK, 0xc1])); // a byte MessagePack never uses
    raw(Buffer.from([COMPACT_MARK, 0xdd, 0, 0, 0, 5])); // five messages announced, none there
    raw(Buffer.concat([Buffer.from([COMPACT_MARK]), encodeCompact({ k: 1, m: 'count' })])); // not an array
    raw(batch(encodeCompact({ k: 1, m: 'count' }), encodeCompact(7), encodeCompact({ k: 1, m: 'count' })));
    await settle(c.rpc.call(a.address, 'echo', 'after'));
    assert.equal(a.rpc.stats.malformedDropped, 4);
    assert.equal(served, 2, 'the good messages of a batch are served');
  });

  it('decodes what it encodes as JSON would (any JSON value, undefined properties left out)', () => {
    const roundTrip = (message: unknown): unknown => decodeCompactBatch(Buffer.concat([compactBatchHeader(1), encodeCompact(message)]))[0];
    // Keys named __proto__ are the one difference, checked below: kept out of the generated values.
    const noProtoKey = (v: unknown): boolean => !JSON.stringify(v).includes('"__proto__"');
    fc.assert(fc.property(fc.jsonValue().filter(noProtoKey), fc.dictionary(fc.string(), fc.constant(undefined)).filter(noProtoKey), (value, holes) => {
      const message = { k: 2, id: 1, b: value, ...holes };
      assert.deepEqual(roundTrip(message), JSON.parse(JSON.stringify(message)));
    }), { numRuns: 500 });
    // msgpackr renames a __proto__ key rather than set an object's prototype from the wire.
    const decoded = roundTrip(JSON.parse('{"k":1,"m":"x","b":{"__proto__":{"polluted":true},"a":1}}')) as { b: Record<string, unknown> };
    assert.equal(Object.getPrototypeOf(decoded.b), Object.prototype);
    assert.equal((({}) as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(decoded.b), ['__proto_', 'a']);
  });
});
