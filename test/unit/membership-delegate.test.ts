import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import { Membership } from '../../src/cluster/membership.js';
import { MAX_META_BYTES, sameMeta, type MemberMeta } from '../../src/cluster/member-meta.js';
import { decodeMessage, encodeMessage, MessageType, type JoinReplyMsg, type Message, type PushPullMsg } from '../../src/cluster/messages.js';
import { PROFILES } from '../../src/cluster/timing.js';
import { nodeMembershipDelegate } from '../../src/node/membership-delegate.js';
import { isNodeMeta, type NodeMeta } from '../../src/node/node-meta.js';
import { settleSimulated } from '../../src/sim/drive.js';
import { SimNetwork } from '../../src/sim/sim-network.js';
import { ProtocolId, TransportMux } from '../../src/transport/mux.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const ENGINE: NodeMeta = { role: 'engine', version: '1.4.2', mode: 'sideband', group: null };

/** Memberships on one simulated network, each built with the node's own delegate. */
function network() {
  const clock = new ManualClock(1_700_000_000_000);
  const random = seededRandom(7);
  const net = new SimNetwork(clock, random);
  const advance = (ms: number): void => clock.advance(ms);
  let next = 0;
  const node = (meta: MemberMeta): Membership => {
    const id = `n${next++}`;
    const address = `10.0.0.${next}:7946`;
    const { clock: own, transport } = net.addNode(id, address);
    const mux = new TransportMux(transport);
    const membership = new Membership({ id, address, delegate: nodeMembershipDelegate(meta as NodeMeta), timing: PROFILES.local, clock: own, random, mux, logger: silentLogger() });
    void transport.start(mux.handlers());
    membership.start();
    return membership;
  };
  /** A bare endpoint that sends raw membership messages and records what comes back. */
  const raw = (id: string, address: string) => {
    const { transport } = net.addNode(id, address);
    const mux = new TransportMux(transport);
    const received: Message[] = [];
    mux.register(ProtocolId.Membership, { onMessage: (_from, _channel, payload) => received.push(decodeMessage(payload)!) });
    void transport.start(mux.handlers());
    return { received, send: (to: string, msg: unknown) => mux.send(ProtocolId.Membership, to, 'control', new TextEncoder().encode(JSON.stringify(msg))) };
  };
  const join = (m: Membership, via: Membership): Promise<string> => settleSimulated(m.join([via.address]), advance, 10_000, 10);
  return { node, raw, join, advance };
}

async function refusal(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof CohortError, String(err));
    return err.code;
  }
}

describe('membership delegate: joins judged by the node', () => {
  const cases: Array<[string, Partial<NodeMeta>, string | undefined]> = [
    ['the same version and mode', {}, undefined],
    ['another maintenance version', { version: '1.4.9' }, undefined],
    ['another mode', { mode: 'inline' }, 'CLUSTER_JOIN_MODE_MISMATCH'],
    ['another minor version', { version: '1.5.0' }, 'CLUSTER_JOIN_VERSION_MISMATCH'],
  ];
  for (const [name, over, code] of cases) {
    it(`${code ? 'refuses' : 'accepts'} a node with ${name}`, async () => {
      const net = network();
      const a = net.node(ENGINE);
      const b = net.node({ ...ENGINE, ...over });
      assert.equal(await refusal(net.join(b, a)), code);
      assert.equal(a.get(b.id) !== undefined, code === undefined, 'listed by the member it asked exactly when accepted');
    });
  }
});

describe('membership delegate: metadata the cluster layer does not read', () => {
  it('carries fields it does not know through joins, join replies and gossip untouched', async () => {
    const net = network();
    const future = { ...ENGINE, tier: 'gold', weights: { read: 3, write: [1, 2] } };
    const a = net.node(ENGINE);
    const b = net.node(future);
    await net.join(b, a);
    assert.deepEqual(a.get(b.id)?.meta, future);
    const c = net.node(ENGINE);
    await net.join(c, a);
    assert.deepEqual(c.get(b.id)?.meta, future, 'from the join reply');
    b.updateMeta({ tier: 'silver' });
    net.advance(5_000);
    assert.deepEqual(c.get(b.id)?.meta, { ...future, tier: 'silver' }, 'from gossip');
  });

  it('drops as malformed a message whose metadata lacks a field the node needs', () => {
    const net = network();
    const a = net.node(ENGINE);
    const sender = net.raw('x', '10.0.9.1:7946');
    const dropped = a.stats.malformedDropped;
    const { role: _role, ...noRole } = ENGINE;
    sender.send(a.address, { t: MessageType.Gossip, from: 'x', g: [{ t: MessageType.Alive, id: 'x', address: '10.0.9.1:7946', incarnation: 1, meta: noRole }] });
    net.advance(100);
    assert.equal(a.stats.malformedDropped, dropped + 1);
    assert.equal(a.get('x'), undefined);
  });
});

describe('membership: metadata is never passed on at an incarnation it was not seen with', () => {
  it('a member whose incarnation was learned from a probe (no metadata) is shared in state exchanges at the incarnation its metadata was seen with', async () => {
    const net = network();
    const a = net.node(ENGINE);
    const b = net.node(ENGINE);
    await net.join(b, a);
    const seen = a.get(b.id)!.incarnation;
    const peer = net.raw('r', '10.0.9.3:7946');
    // An ack carries the sender's incarnation and no metadata: b has since announced new
    // metadata under seen + 5, which a has not received yet.
    peer.send(a.address, { t: MessageType.Ack, seq: 999_999, from: b.id, inc: seen + 5, at: 1_700_000_000_000 });
    net.advance(50);
    assert.equal(a.get(b.id)!.incarnation, seen + 5);
    peer.send(a.address, { t: MessageType.PushPull, from: 'r', reply: true, members: [] });
    net.advance(50);
    const reply = peer.received.find((m): m is PushPullMsg => m.t === MessageType.PushPull);
    const shared = reply?.members.find((m) => m.id === b.id);
    assert.equal(shared?.incarnation, seen, 'shared under seen + 5, the old metadata would outrank the new one everywhere it spread');
    assert.deepEqual(shared?.meta, ENGINE);
  });

  it('a member told its own incarnation with other metadata outranks that picture', async () => {
    const net = network();
    const a = net.node(ENGINE);
    const b = net.node(ENGINE);
    await net.join(b, a);
    const before = b.currentIncarnation;
    const peer = net.raw('r', '10.0.9.4:7946');
    peer.send(b.address, { t: MessageType.PushPull, from: 'r', reply: false, members: [{ id: b.id, address: b.address, incarnation: before, state: 'alive', meta: { ...ENGINE, holdsState: true } }] });
    net.advance(50);
    assert.ok(b.currentIncarnation > before, 'refuted');
    assert.deepEqual(b.get(b.id)?.meta, ENGINE, 'its own metadata unchanged');
  });
});

describe('membership delegate: metadata size bound', () => {
  const oversized = { ...ENGINE, padding: 'x'.repeat(MAX_META_BYTES) };

  it('refuses a join request carrying oversized metadata with CLUSTER_META_TOO_LARGE', () => {
    const net = network();
    const a = net.node(ENGINE);
    const joiner = net.raw('big', '10.0.9.2:7946');
    joiner.send(a.address, { t: MessageType.Join, id: 'big', address: '10.0.9.2:7946', incarnation: 1, meta: oversized, protocol: 1 });
    net.advance(100);
    const reply = joiner.received.find((m): m is JoinReplyMsg => m.t === MessageType.JoinReply);
    assert.equal(reply?.accepted, false);
    assert.equal(reply?.code, 'CLUSTER_META_TOO_LARGE');
    assert.equal(a.get('big'), undefined);
  });

  it('drops any other message carrying oversized metadata as malformed', () => {
    const alive = { t: MessageType.Alive, id: 'big', address: '10.0.9.2:7946', incarnation: 1, meta: oversized };
    assert.equal(decodeMessage(encodeMessage(alive as Message)), undefined);
    assert.ok(decodeMessage(encodeMessage({ ...alive, meta: ENGINE } as Message)));
  });

  it('refuses to announce oversized metadata of its own', () => {
    const net = network();
    const a = net.node(ENGINE);
    const incarnation = a.currentIncarnation;
    assert.throws(() => a.updateMeta({ padding: oversized.padding }), (err: unknown) => err instanceof CohortError && err.code === 'CLUSTER_META_TOO_LARGE');
    assert.equal(a.currentIncarnation, incarnation);
    assert.equal(a.get(a.id)?.meta.padding, undefined);
    assert.throws(() => net.node(oversized), (err: unknown) => err instanceof CohortError && err.code === 'CLUSTER_META_TOO_LARGE');
  });
});

describe('node metadata check (known fields typed, unknown fields let through)', () => {
  const table: Array<[string, unknown, boolean]> = [
    ['a console', { role: 'console', version: '1.0.0', mode: 'sideband', group: null, epoch: 3 }, true],
    ['an engine with every field', { ...ENGINE, group: 'eu', holdsState: true, index: 2, scopes: ['g:eu'], sessionScope: 'g:eu', refusesWrites: false, runtime: 'h:8080' }, true],
    ['unknown fields', { ...ENGINE, tier: 'gold', nested: { a: [1] } }, true],
    ['no role', { version: '1.0.0', mode: 'sideband', group: null }, false],
    ['a numeric version', { ...ENGINE, version: 1 }, false],
    ['a group that is neither a string nor null', { ...ENGINE, group: 3 }, false],
    ['a negative index', { ...ENGINE, index: -1 }, false],
    ['scopes that are not strings', { ...ENGINE, scopes: [1] }, false],
    ['holdsState as a string', { ...ENGINE, holdsState: 'yes' }, false],
  ];
  for (const [name, meta, ok] of table) {
    it(`${ok ? 'accepts' : 'refuses'} ${name}`, () => assert.equal(isNodeMeta(meta as MemberMeta), ok));
  }
});

describe('metadata equality (a change is news, the same value in another order is not)', () => {
  // Plain JSON objects: the equality knows no field (the node's fields are merged into MemberMeta).
  const table: Array<[string, Record<string, unknown>, Record<string, unknown>, boolean]> = [
    ['the same fields in another order', { a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }, true],
    ['an absent field and an undefined one', { a: 1 }, { a: 1, b: undefined }, true],
    ['a changed value', { a: 1 }, { a: 2 }, false],
    ['an added field', { a: 1 }, { a: 1, b: false }, false],
    ['a changed array', { s: ['x'] }, { s: ['x', 'y'] }, false],
    ['an object and an array', { s: {} }, { s: [] }, false],
  ];
  for (const [name, a, b, same] of table) it(`${name}: ${same ? 'same' : 'different'}`, () => assert.equal(sameMeta(a as MemberMeta, b as MemberMeta), same));
});

describe('the cluster layer keeps metadata opaque', () => {
  it('has no source under src/cluster that imports the node layer or reads a node field off metadata', () => {
    const dir = join(PACKAGE_ROOT, 'src', 'cluster');
    const fields = ['role', 'version', 'mode', 'group', 'holdsState', 'index', 'scopes', 'sessionScope', 'epoch', 'refusesWrites', 'runtime'];
    const offending: string[] = [];
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      if (/from '\.\.\/(node|state|console|engine)\//.test(text)) offending.push(`${file} imports a layer above it`);
      for (const field of fields) if (new RegExp(`meta\\??\\.${field}\\b`).test(text)) offending.push(`${file} reads meta.${field}`);
    }
    assert.deepEqual(offending, []);
  });
});
