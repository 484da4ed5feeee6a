import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError, isCohortError, type ErrorCode } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import { anything, int, listOf, literal, num, object, rawText, shortStr, str, taggedUnion, type BodySchema } from '../../src/rpc/body-schema.js';
import { defineProtocol, ProtocolRpc, type MethodTypes, type Protocol } from '../../src/rpc/protocol.js';
import { RawText, Rpc } from '../../src/rpc/rpc.js';
import { SimNetwork } from '../../src/sim/sim-network.js';
import { TransportMux } from '../../src/transport/mux.js';
import { PROTOCOL_VERSION_MAX } from '../../src/transport/handshake.js';
import { GRID_PROTOCOL } from '../../src/state/grid/grid-protocol.js';
import { CONFIG_PROTOCOL } from '../../src/policy/config-protocol.js';
import { CONSOLE_PROTOCOL } from '../../src/console/console-protocol.js';

/** Two nodes with an Rpc each on a simulated network, one clock. */
async function twoNodes() {
  const clock = new ManualClock(1_000_000);
  const network = new SimNetwork(clock, seededRandom(7));
  const nodes = [];
  for (let i = 0; i < 2; i++) {
    const address = `10.0.0.${i + 1}:7000`;
    const { clock: nodeClock, transport } = network.addNode(`n${i}`, address);
    const mux = new TransportMux(transport);
    const rpc = new Rpc({ mux, clock: nodeClock, logger: silentLogger(), timeoutMs: 500 });
    await transport.start(mux.handlers());
    nodes.push({ address, rpc });
  }
  const settle = async <T>(promise: Promise<T>): Promise<{ value?: T; error?: CohortError }> => {
    let outcome: { value?: T; error?: CohortError } | undefined;
    promise.then((value) => (outcome = { value }), (error: CohortError) => (outcome = { error }));
    for (let i = 0; i < 5000 && !outcome; i++) {
      clock.advance(1);
      await Promise.resolve();
      await Promise.resolve();
    }
    assert.ok(outcome, 'the promise settled');
    return outcome;
  };
  return { nodes: nodes as [(typeof nodes)[0], (typeof nodes)[0]], settle };
}

function expectCode(error: unknown, code: ErrorCode): void {
  assert.ok(isCohortError(error), `expected ${code}, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
}

type PingMethods = {
  'ping.add': { request: { a: number; b: number; note?: string }; answer: number };
  'ping.echo': { request: unknown; answer: unknown };
};
const PING = defineProtocol<PingMethods>('ping', {
  'ping.add': { since: 2, request: object({ a: num, b: num }, { note: shortStr(8) }) },
  'ping.echo': { since: 1, request: anything },
});

describe('body schemas', () => {
  const cases: Array<[string, BodySchema<unknown>, unknown, string | undefined]> = [
    ['a string', str, 'x', undefined],
    ['a number is not a string', str, 1, 'a string expected'],
    ['a string too long', shortStr(3), 'abcd', 'at most 3 characters expected'],
    ['an integer', int, 3, undefined],
    ['a fraction is not an integer', int, 1.5, 'an integer expected'],
    ['NaN is not a number', num, Number.NaN, 'a number expected'],
    ['a list of integers', listOf(int), [1, 2], undefined],
    ['the path names the bad entry', listOf(int), [1, 'x'], '[1]: an integer expected'],
    ['a list too long', listOf(int, 2), [1, 2, 3], 'at most 2 entries expected'],
    ['a literal', literal('a', 'b'), 'b', undefined],
    ['not one of the literals', literal('a', 'b'), 'c', 'one of a, b expected'],
    ['an object with its fields', object({ a: int }, { b: str }), { a: 1, b: 'x', extra: true }, undefined],
    ['an optional field absent or null', object({ a: int }, { b: str }), { a: 1, b: null }, undefined],
    ['a required field missing', object({ a: int }), {}, 'a: missing'],
    ['a nested field of the wrong type', object({ o: object({ n: num }) }), { o: { n: 'x' } }, 'o.n: a number expected'],
    ['an optional field of the wrong type', object({}, { b: str }), { b: 2 }, 'b: a string expected'],
    ['null is not an object', object({}), null, 'an object expected'],
    ['a list is not an object', object({}), [], 'an object expected'],
    ['record lines', rawText, new RawText('x'), undefined],
    ['JSON is not record lines', rawText, 'x', 'record lines expected'],
    ['a variant of a tagged union', taggedUnion<{ t: 'a'; n: number } | { t: 'b' }, 't'>('t', { a: object({ n: num }), b: object({}) }), { t: 'a', n: 1 }, undefined],
    ['a variant missing its field', taggedUnion<{ t: 'a'; n: number } | { t: 'b' }, 't'>('t', { a: object({ n: num }), b: object({}) }), { t: 'a' }, 'n: missing'],
    ['an unknown variant', taggedUnion<{ t: 'a' } | { t: 'b' }, 't'>('t', { a: object({}), b: object({}) }), { t: 'toString' }, 't: one of a, b expected'],
  ];
  for (const [name, schema, value, expected] of cases) {
    it(name, () => assert.equal(schema.problem(value, ''), expected));
  }
});

describe('protocol tables', () => {
  it('refuses a malformed body with RPC_BAD_REQUEST, naming the field, and the handler never sees it', async () => {
    const { nodes, settle } = await twoNodes();
    const [a, b] = nodes;
    const seen: unknown[] = [];
    new ProtocolRpc(b.rpc, PING).handle('ping.add', (body) => {
      seen.push(body);
      return body.a + body.b;
    });
    const client = new ProtocolRpc(a.rpc, PING);
    assert.equal((await settle(client.call(b.address, 'ping.add', { a: 2, b: 3 }))).value, 5);
    for (const [body, field] of [
      [{ a: 2 }, 'b: missing'],
      [{ a: 2, b: '3' }, 'b: a number expected'],
      [{ a: 2, b: 3, note: 'far too long' }, 'note: at most 8 characters'],
      [null, 'an object expected'],
      ['2+3', 'an object expected'],
    ] as const) {
      // What a node that does not follow the table (a bug, a foreign sender) may put on the wire.
      const { error } = await settle(a.rpc.call(b.address, 'ping.add', body));
      expectCode(error, 'RPC_BAD_REQUEST');
      assert.match(error!.message, new RegExp(field.replace(/[[\]]/g, '\\$&')));
    }
    assert.deepEqual(seen, [{ a: 2, b: 3 }], 'only the well-formed request reached the handler');
  });

  it('rejects a method that is not in the table, to serve or to call', async () => {
    const { nodes, settle } = await twoNodes();
    const [a, b] = nodes;
    const server = new ProtocolRpc(b.rpc, PING);
    const client = new ProtocolRpc(a.rpc, PING);
    expectCode(catchError(() => PING.entry('ping.nope' as 'ping.add')), 'RPC_UNKNOWN_METHOD');
    expectCode(catchError(() => PING.entry('toString' as 'ping.add')), 'RPC_UNKNOWN_METHOD');
    expectCode(catchError(() => server.handle('ping.nope' as 'ping.add', () => 0)), 'RPC_UNKNOWN_METHOD');
    expectCode((await settle(client.call(b.address, 'ping.nope' as 'ping.add', { a: 1, b: 1 }))).error, 'RPC_UNKNOWN_METHOD');
    expectCode((await settle(client.fanOut([b.address], 'ping.nope' as 'ping.add', { a: 1, b: 1 }, 'all'))).error, 'RPC_UNKNOWN_METHOD');
    expectCode(catchError(() => client.notify(b.address, 'ping.nope' as 'ping.add', { a: 1, b: 1 })), 'RPC_UNKNOWN_METHOD');
    // And at compile time: a method outside the table, or a body of the wrong type, does not type-check.
    // @ts-expect-error not a method of the table
    assert.throws(() => server.handle('ping.nope', () => 0));
    // @ts-expect-error b must be a number
    void client.call(b.address, 'ping.add', { a: 1, b: '1' }).catch(() => undefined);
  });

  it('every method of every table appeared in a wire-protocol version this build knows', () => {
    const tables: Array<Protocol<MethodTypes>> = [GRID_PROTOCOL, CONFIG_PROTOCOL, CONSOLE_PROTOCOL] as unknown as Array<Protocol<MethodTypes>>;
    for (const table of tables) {
      assert.ok(table.methodNames.length > 0, table.name);
      for (const method of table.methodNames) {
        const { since } = table.entry(method);
        assert.ok(Number.isInteger(since) && since >= 1 && since <= PROTOCOL_VERSION_MAX, `${table.name} ${method}: since ${since}`);
      }
    }
  });
});

describe('the grid protocol table', () => {
  const session = { id: 's1', subject: 'u', attributes: {}, createdAt: 1, lastAccessAt: 1, idleTimeoutMs: 10, maxLifetimeMs: 20, expiresAt: 11 };
  const record = { json: '{}', expiresAt: 5, version: 7, partition: 3 };
  // Bodies as the engines send them today: each must still fit (the wire is unchanged).
  const sent: Array<[string, unknown]> = [
    ['grid.execute', { partition: 3, op: { t: 'session.put', session } }],
    ['grid.execute', { partition: 3, op: { t: 'session.get', id: 's1', touch: true, touchAfterMs: 1000 } }],
    ['grid.execute', { partition: 3, op: { t: 'session.page', subject: 'u', limit: 10, maxBytes: 1000, after: { createdAt: 1, id: 's0' } } }],
    ['grid.execute', { partition: 3, op: { t: 'bucket.take', policy: 'p', key: 'k', limits: { capacity: 5, refillPerSecond: 1 }, count: 2 } }],
    ['grid.execute', { partition: 3, op: { t: 'value.put', space: 'state', key: 'k', value: { any: ['json'] }, ttlMs: 100 } }],
    ['grid.read', { partition: 3, op: { t: 'lockout.get', key: 'k', policy: { maxFailures: 3, windowMs: 10, lockMs: 10 } } }],
    ['grid.replicate', { partition: 3, changes: [{ ns: 'session', key: 's1', record }], absent: [{ ns: 'replay', key: 'r' }] }],
    ['grid.replicate', { partition: 3, changes: [{ ns: 'undone', key: 'k', record: { ...record, deleted: true, origin: 'e1', index: 'u' }, ifVersion: 6, ifOrigin: 'e2' }] }],
    ['grid.merge', { changes: [] }],
    ['grid.pull', { partitions: [1, 2], after: ['session', 'k'] }],
    ['grid.mergeLines', new RawText('')],
    ['grid.digests', { partitions: [-1, 0, 255] }],
    ['grid.serving', {}],
    ['grid.sweep', {}],
    ['grid.revoked', { ids: ['a', 'b'] }],
  ];
  for (const [method, body] of sent) {
    it(`takes ${method} as sent: ${JSON.stringify(body).slice(0, 80)}`, () => {
      assert.deepEqual(GRID_PROTOCOL.request(method as 'grid.execute', body), body);
    });
  }
  const malformed: Array<[string, unknown, string]> = [
    ['grid.execute', { partition: 3, op: { t: 'session.explode' } }, 'op.t: one of'],
    ['grid.execute', { partition: '3', op: { t: 'session.delete', id: 's1' } }, 'partition: an integer expected'],
    ['grid.execute', { partition: 3, op: { t: 'session.put', session: { ...session, attributes: 'x' } } }, 'op.session.attributes: an object expected'],
    ['grid.read', { partition: 3, op: { t: 'session.get', id: 7, touch: false } }, 'op.id: a string expected'],
    ['grid.replicate', { partition: 3, changes: [{ ns: 'nonsense', key: 'k', record }] }, 'changes[0].ns: one of'],
    ['grid.replicate', { partition: 3, changes: [{ ns: 'session', key: 'k', record: { ...record, json: 1 } }] }, 'changes[0].record.json: a string expected'],
    ['grid.merge', { changes: 'all' }, 'changes: a list expected'],
    ['grid.mergeLines', 'lines', 'record lines expected'],
    ['grid.digests', { partitions: [0.5] }, 'partitions[0]: an integer expected'],
    ['grid.revoked', { ids: Array.from({ length: 1001 }, (_, i) => String(i)) }, 'ids: at most 1000 entries expected'],
    ['grid.revoked', { ids: [1] }, 'ids[0]: a string expected'],
  ];
  for (const [method, body, problem] of malformed) {
    it(`refuses ${method} with ${problem}`, () => {
      const error = catchError(() => GRID_PROTOCOL.request(method as 'grid.execute', body));
      expectCode(error, 'RPC_BAD_REQUEST');
      assert.ok((error as Error).message.includes(problem), (error as Error).message);
    });
  }
});

describe('the configuration and console protocol tables', () => {
  const proof = { key: 'k', signature: 's', at: 1, nonce: 'n' };
  it('take the bodies the console, replica and engines send', () => {
    assert.ok(CONFIG_PROTOCOL.request('config.fetch', { version: 0, epoch: -1, nonce: 'n', full: true }));
    assert.ok(CONFIG_PROTOCOL.request('config.changed', { version: 2, epoch: 1 }));
    assert.ok(CONFIG_PROTOCOL.request('config.applied', { version: 2, appliedAt: 5 }));
    assert.ok(CONSOLE_PROTOCOL.request('config.export', { sinceVersion: 0, sinceAuditId: 0, sinceDocument: { epoch: 1, hash: 'h' }, proof }));
    // No proof is the proof checker's to refuse (CONSOLE_ROLE_UNPROVEN), not the table's.
    assert.ok(CONSOLE_PROTOCOL.request('config.users', {}));
    assert.ok(CONSOLE_PROTOCOL.request('config.history', { what: 'audit', limit: 200, proof }));
    assert.ok(CONSOLE_PROTOCOL.request('config.discarded', { records: [{ id: 1 }], proof }));
    assert.ok(CONSOLE_PROTOCOL.request('console.prove', { nonce: 'n' }));
  });

  it('refuse malformed ones', () => {
    for (const [run, problem] of [
      [() => CONFIG_PROTOCOL.request('config.fetch', { version: 'latest', epoch: 0 }), 'version: a number expected'],
      [() => CONSOLE_PROTOCOL.request('config.history', { what: 'secrets', proof }), 'what: one of versions, audit expected'],
      [() => CONSOLE_PROTOCOL.request('config.discarded', { records: 'all' }), 'records: a list expected'],
      [() => CONSOLE_PROTOCOL.request('config.users', { proof: 'trust me' }), 'proof: an object expected'],
      [() => CONSOLE_PROTOCOL.request('console.prove', { nonce: 'x'.repeat(65) }), 'nonce: at most 64 characters expected'],
    ] as const) {
      const error = catchError(run);
      expectCode(error, 'RPC_BAD_REQUEST');
      assert.ok((error as Error).message.includes(problem), (error as Error).message);
    }
  });
});

function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  return undefined;
}
