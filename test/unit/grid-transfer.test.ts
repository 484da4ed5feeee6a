/**
 * Partitions far larger than a frame move between engines (state/grid/partition-transfer.ts:
 * chunked pulls and hand-off pushes), on the simulated network, which drops a message over
 * the TCP frame limit (16 MiB) exactly as TCP does: 45 sessions of 900 KB of one subject make
 * one partition of about 40 MB, two and a half frames (`npm run chaos`: 150 sessions, about
 * 135 MB; COHORT_GRID_LARGE_SESSIONS sets the count).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/random.js';
import { RawText } from '../../src/rpc/rpc.js';
import { SimNetwork } from '../../src/sim/sim-network.js';
import { partitionOfSessionId } from '../../src/state/grid/grid-provider.js';
import type { StateProvider } from '../../src/state/services.js';
import { MAX_FRAME_BYTES } from '../../src/transport/frame-codec.js';
import { SimGrid } from '../helpers/sim-grid.js';
import { SEEDS_TIMEOUT_MS } from '../helpers/grid-chaos-seeds.js';

const BLOB = 'x'.repeat(900_000);
const SESSIONS = Number(process.env.COHORT_GRID_LARGE_SESSIONS ?? 45);
const PARTITION_MB = Math.round((SESSIONS * BLOB.length) / 1e6);
const TTL = { idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 };

/** `count` sessions of one subject (so one partition), 900 KB each, created one after another. */
async function heavySessions(provider: StateProvider, count = SESSIONS): Promise<{ ids: string[]; partition: number }> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await provider.sessions.create({ subject: 'heavy', attributes: { blob: BLOB, n: i }, ...TTL })).id);
  const partition = partitionOfSessionId(ids[0]!)!;
  assert.ok(ids.every((id) => partitionOfSessionId(id) === partition));
  return { ids, partition };
}

/** Messages dropped for exceeding the frame limit, over every engine's transport so far. */
function oversized(grid: SimGrid): number {
  return grid.engines.reduce((n, e) => n + e.transport.stats().framesOversized, 0);
}

/** Advances simulated time until `done()` holds; fails after `limitMs`. */
async function until(grid: SimGrid, done: () => boolean, limitMs: number, what: string): Promise<void> {
  for (let t = 0; t < limitMs && !done(); t += 10) await grid.advance(10);
  assert.ok(done(), `${what} within ${limitMs} simulated ms`);
}

// Large transfers on a shared 2-core machine: minutes at worst, not the default two.
describe('partitions larger than a frame', { timeout: SEEDS_TIMEOUT_MS }, () => {
  it('the simulated network drops a message over the frame limit, as TCP does', async () => {
    const clock = new ManualClock(0);
    const net = new SimNetwork(clock, seededRandom(1));
    const a = net.addNode('a', '10.0.0.1:1');
    const b = net.addNode('b', '10.0.0.2:1');
    let delivered = 0;
    await b.transport.start({ onMessage: () => delivered++, onPeerDown: () => undefined, onRefused: () => undefined });
    assert.ok(net.maxMessageBytes < MAX_FRAME_BYTES && net.maxMessageBytes > MAX_FRAME_BYTES - 64);
    a.transport.send('10.0.0.2:1', 'bulk', new Uint8Array(net.maxMessageBytes + 1));
    a.transport.send('10.0.0.2:1', 'bulk', new Uint8Array(net.maxMessageBytes));
    clock.advance(10);
    assert.equal(delivered, 1);
    assert.equal(a.transport.stats().framesOversized, 1);
  });

  it(`an engine that comes back empty takes a ${PARTITION_MB} MB partition and every engine agrees`, async () => {
    const grid = await SimGrid.started(3);
    const { ids, partition } = await heavySessions(grid.provider(0));
    grid.crash(2);
    grid.restart(2);
    grid.setActive([0, 1, 2]);
    await grid.untilReady(60_000);
    const digests = grid.engines.map((e) => e.store.digest(partition));
    assert.deepEqual(digests, [digests[0], digests[0], digests[0]], 'every engine holds the same records');
    assert.equal(grid.engines[2]!.store.recordCount(partition), SESSIONS);
    for (const id of ids) assert.equal((await grid.provider(2).sessions.get(id))?.attributes.blob, BLOB);
    assert.equal(oversized(grid), 0, 'no message exceeded the frame limit');
    grid.close();
  });

  it('a pull asks for the next slice of a partition before it merges the last one, so the sender builds it meanwhile', async () => {
    const grid = await SimGrid.started(3);
    const { partition } = await heavySessions(grid.provider(0));
    grid.crash(2);
    const fresh = grid.restart(2);
    // Each request for a further slice names the last record of the slice before (its
    // cursor): when it leaves, that slice has arrived but is not merged yet.
    const cursorHeldWhenAsked: boolean[] = [];
    grid.watchDeliveries(({ fromAddress, payload }) => {
      const cursor = /"m":"grid\.pull".*"after":\["session","([^"]+)"\]/.exec(Buffer.from(payload.subarray(0, 400)).toString('latin1'));
      if (fromAddress === fresh.address && cursor) cursorHeldWhenAsked.push(fresh.store.record('session', cursor[1]!) !== undefined);
    });
    grid.setActive([0, 1, 2]);
    await grid.untilReady(60_000);
    assert.equal(fresh.store.recordCount(partition), SESSIONS);
    assert.ok(cursorHeldWhenAsked.length >= 2, `the partition came in slices (${cursorHeldWhenAsked.length + 1})`);
    assert.deepEqual(cursorHeldWhenAsked, cursorHeldWhenAsked.map(() => false), 'every further slice was asked for before the one before it was merged');
    grid.close();
  });

  it(`a hand-off push alone moves a ${PARTITION_MB} MB partition to its new replica`, async () => {
    const grid = await SimGrid.started(3, { replicationFactor: 2 });
    const { partition } = await heavySessions(grid.provider(0));
    const [primaryId, backupId] = grid.engines[0]!.executor.replicasOf(partition);
    const primary = grid.engines.findIndex((e) => e.id === primaryId);
    const backup = grid.engines.findIndex((e) => e.id === backupId);
    const outsider = [0, 1, 2].find((i) => i !== primary && i !== backup)!;
    assert.equal(grid.engines[outsider]!.store.recordCount(partition), 0);
    // Pulls are refused everywhere: only the primary's push can bring the partition over.
    for (const e of grid.engines) {
      e.rpc.handle('grid.pull', () => {
        throw new CohortError('STATE_UNAVAILABLE', 'pulls are refused in this test');
      });
    }
    grid.crash(backup);
    grid.setActive(grid.live());
    const target = grid.engines[outsider]!;
    assert.deepEqual(target.executor.replicasOf(partition).slice().sort(), [primaryId, target.id].sort());
    await until(grid, () => target.store.digest(partition) === grid.engines[primary]!.store.digest(partition), 30_000, 'the new replica holds the partition');
    assert.equal(target.store.recordCount(partition), SESSIONS);
    assert.equal(oversized(grid), 0);
    grid.close();
  });

  it('a partition whose transfer breaks off does not count as synchronised until all of it arrived', async () => {
    const grid = await SimGrid.started(3);
    const { partition } = await heavySessions(grid.provider(0));
    grid.crash(2);
    const fresh = grid.restart(2);
    const sentBefore = [0, 1].map((i) => grid.engines[i]!.transport.stats().bytesSent);
    grid.setActive([0, 1, 2]);
    let source: number | undefined;
    for (let t = 0; t < 60_000 && !fresh.executor.ready; t++) {
      await grid.advance(1);
      const held = fresh.store.recordCount(partition);
      if (source === undefined && held > 0 && held < SESSIONS) {
        // The engine sending the chunks dies with part of the partition delivered.
        const sent = [0, 1].map((i) => grid.engines[i]!.transport.stats().bytesSent - sentBefore[i]!);
        source = sent[0]! > sent[1]! ? 0 : 1;
        grid.crash(source);
      }
    }
    assert.notEqual(source, undefined, 'the transfer was seen part way');
    assert.ok(fresh.executor.ready, 'ready in the end');
    assert.equal(fresh.store.recordCount(partition), SESSIONS, 'ready only with every record of the partition');
    assert.equal(fresh.store.digest(partition), grid.engines[1 - source!]!.store.digest(partition));
    grid.close();
  });

  it('many large writes at once are all acknowledged (control messages of one turn are split across frames)', async () => {
    const grid = await SimGrid.started(3);
    const provider = grid.provider(0);
    const created = await Promise.all(Array.from({ length: 80 }, (_, i) => provider.sessions.create({ subject: `s-${i}`, attributes: { blob: BLOB }, ...TTL })));
    assert.equal(created.length, 80);
    for (const e of grid.engines) for (const s of created) assert.ok(e.store.has('session', s.id), `${e.id} holds ${s.id}`);
    assert.equal(oversized(grid), 0);
    grid.close();
  });

  it('a pull answers a partition too large for one message in chunks, with a cursor, and an old-style request still works', async () => {
    const grid = await SimGrid.started(2);
    const { partition } = await heavySessions(grid.provider(0), 20);
    const small = (partition + 1) % 271;
    const [a, b] = grid.engines as [SimGrid['engines'][0], SimGrid['engines'][0]];
    const pull = (body: unknown): Promise<{ header: unknown; lines: string[] }> =>
      grid.drive(a.rpc.call<RawText>(b.address, 'grid.pull', body, { channel: 'bulk', timeoutMs: 10_000 })).then((answer) => {
        assert.ok(answer instanceof RawText);
        const nl = answer.text.indexOf('\n');
        return { header: JSON.parse(answer.text.slice(0, nl)) as unknown, lines: answer.text.slice(nl + 1).split('\n').filter(Boolean) };
      });
    // A partition that fits: the header is the list of partitions sent, as engines have always read it.
    assert.deepEqual((await pull({ partitions: [small] })).header, [small]);
    // The large one: slices of whole records, each well under the frame limit, resumed after the last key sent.
    const keys = new Set<string>();
    let after: unknown;
    let chunks = 0;
    for (;;) {
      const { header, lines } = await pull(after === undefined ? { partitions: [partition, small] } : { partitions: [partition, small], after });
      chunks++;
      assert.ok(lines.length >= 1);
      for (const line of lines) keys.add(line.split('\t')[5]!);
      const h = header as { done: number[]; partial?: { partition: number; after: unknown } } | number[];
      if (Array.isArray(h)) {
        assert.deepEqual(h, [partition, small]);
        break;
      }
      assert.equal(h.partial?.partition, partition);
      after = h.partial.after;
    }
    assert.ok(chunks >= 4, `${chunks} chunks`);
    assert.equal(keys.size, 20, 'every record once');
    grid.close();
  });
});
