/**
 * `npm run bench:rpc-codec`: what the RPC layer spends on a replication message, in JSON (as
 * sent to a node of wire protocol 2) and in MessagePack (the compact form, protocol 3), in one
 * run: two `Rpc` instances in one process over an in-memory transport (no sockets, no
 * encryption: the codec and the RPC bookkeeping only), `grid.replicate` calls shaped like a
 * session write (256 bytes of attributes in the record's JSON text) and their answers, in
 * batches of --batch calls at once, the two forms alternating for --rounds rounds. The figure
 * is CPU time (user + system, process.cpuUsage) per call and its answer, both ends together.
 *
 * Usage: node dist/bench/rpc-codec.js [--calls 100000] [--batch 64] [--rounds 3] [--json]
 * The last line reads `rpc-codec: json <µs> compact <µs> ratio <R>` (compact over JSON).
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/core/logger.js';
import { COMPACT_MARK, COMPACT_PROTOCOL } from '../src/rpc/compact-codec.js';
import { Rpc } from '../src/rpc/rpc.js';
import { GRID_PROTOCOL } from '../src/state/grid/grid-protocol.js';
import { TransportMux } from '../src/transport/mux.js';
import { emptyStats, type Channel, type PeerIdentity, type Transport, type TransportHandlers } from '../src/transport/transport.js';

export interface RpcCodecFigures {
  calls: number;
  batch: number;
  rounds: number;
  /** CPU µs per call and its answer, both ends: JSON, then the compact form. */
  jsonUs: number;
  compactUs: number;
}

/** An in-memory transport between two addresses, delivering on the next turn, that says it agreed on `protocol`. */
class MemoryTransport implements Transport {
  handlers: TransportHandlers | undefined;
  peer: MemoryTransport | undefined;
  protocol = 3;
  /** Frames sent, by form: compact (MessagePack) or not. */
  frames = { compact: 0, json: 0 };

  constructor(readonly localAddress: string, private readonly nodeId: string) {}

  async start(handlers: TransportHandlers): Promise<void> {
    this.handlers = handlers;
  }

  send(_to: string, channel: Channel, payload: Uint8Array): void {
    // After the mux's protocol byte, the RPC layer's mark.
    if (payload[1] === COMPACT_MARK) this.frames.compact++;
    else this.frames.json++;
    const from: PeerIdentity = { nodeId: this.nodeId, address: this.localAddress };
    setImmediate(() => this.peer!.handlers!.onMessage(from, channel, payload));
  }

  connect(): Promise<PeerIdentity> {
    return Promise.resolve({ nodeId: 'peer', address: this.peer!.localAddress });
  }

  protocolTo(): number {
    return this.protocol;
  }

  disconnect(): void {}

  stats() {
    return emptyStats();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A `grid.replicate` body as a session write makes it. */
function replicateBody(i: number) {
  const attributes = { role: 'member', email: `user-${i}@bench.test`, note: 'x'.repeat(200) };
  return {
    partition: i % 271,
    changes: [{
      ns: 'session' as const,
      key: `s${String(i).padStart(31, '0')}`,
      record: { json: JSON.stringify([attributes, 1_764_860_000_000 + i, 1_764_860_000_000 + i, 1_800_000, 28_800_000]), expiresAt: 1_764_890_000_000 + i, version: 1_764_860_000_000_000 + i, partition: i % 271, index: `user-${i}`, origin: 'engine-1' },
    }],
  };
}

export async function measureRpcCodec(options: { calls: number; batch: number; rounds: number }): Promise<RpcCodecFigures> {
  const a = new MemoryTransport('10.0.0.1:7000', 'engine-1');
  const b = new MemoryTransport('10.0.0.2:7000', 'engine-2');
  a.peer = b;
  b.peer = a;
  const rpcs = [a, b].map((t) => {
    const mux = new TransportMux(t);
    void t.start(mux.handlers());
    return new Rpc({ mux, clock: systemClock, logger: silentLogger(), timeoutMs: 60_000 });
  });
  const [caller, server] = rpcs as [Rpc, Rpc];
  // As the grid marks them (its protocol table); the handler answers as a backup does.
  for (const method of GRID_PROTOCOL.methodNames) if (GRID_PROTOCOL.entry(method).compact) for (const rpc of rpcs) rpc.compact(method);
  server.handle('grid.replicate', () => true);

  const run = async (protocol: number, calls: number): Promise<number> => {
    a.protocol = protocol;
    b.protocol = protocol;
    const started = process.cpuUsage();
    for (let i = 0; i < calls; i += options.batch) {
      const answers = await Promise.all(Array.from({ length: Math.min(options.batch, calls - i) }, (_, k) => caller.call(b.localAddress, 'grid.replicate', replicateBody(i + k))));
      if (!answers.every((x) => x === true)) throw new Error('a replicate call was not answered true');
    }
    const used = process.cpuUsage(started);
    // The form measured is the form that was sent, both ways.
    for (const t of [a, b]) {
      if (protocol >= COMPACT_PROTOCOL ? t.frames.json > 0 : t.frames.compact > 0) throw new Error(`protocol ${protocol}: frames sent ${JSON.stringify(t.frames)}`);
      t.frames = { compact: 0, json: 0 };
    }
    return (used.user + used.system) / calls;
  };
  // Warm-up of both forms, then the rounds, alternating.
  await run(2, Math.min(options.calls, 20_000));
  await run(3, Math.min(options.calls, 20_000));
  const json: number[] = [];
  const compact: number[] = [];
  for (let r = 0; r < options.rounds; r++) {
    json.push(await run(2, options.calls));
    compact.push(await run(3, options.calls));
  }
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return { calls: options.calls, batch: options.batch, rounds: options.rounds, jsonUs: mean(json), compactUs: mean(compact) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '100000' },
      batch: { type: 'string', default: '64' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
  });
  const f = await measureRpcCodec({ calls: Number(values.calls), batch: Number(values.batch), rounds: Number(values.rounds) });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(f)}\n`);
    return;
  }
  process.stdout.write([
    `| ${f.calls} grid.replicate calls x ${f.rounds} rounds, ${f.batch} at once | CPU per call and answer (both ends) |`,
    '| --- | ---: |',
    `| JSON (a peer of wire protocol 2) | ${f.jsonUs.toFixed(2)} µs |`,
    `| MessagePack (wire protocol 3) | ${f.compactUs.toFixed(2)} µs |`,
    '',
    `rpc-codec: json ${f.jsonUs.toFixed(2)} compact ${f.compactUs.toFixed(2)} ratio ${(f.compactUs / f.jsonUs).toFixed(2)}`,
    '',
  ].join('\n'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
