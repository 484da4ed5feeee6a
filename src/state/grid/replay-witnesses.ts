/**
 * Replay ids held for partitions this engine does not replicate: the witnesses that make a
 * replay id's acceptance need a majority of the cluster's engines, not only its replicas.
 *
 * Why: a replay id is accepted once every replica of its partition took it, and a primary that
 * does not see a majority of the engines refuses it (write-majority.ts). But an engine counts
 * as seen until membership suspects it, so for a moment after a network split an engine on
 * the far side still counts on both sides. With more engines than replicas (7 engines, 3
 * replicas), each side can then hold whole replica sets of its own and accept the same id
 * (the lifecycle simulator found it). Here the primary also has the id held by as many other
 * engines as it takes for the replicas and them to be a majority of the engines (none with 5
 * engines or fewer and 3 replicas: the replicas already are one). Two majorities share an
 * engine, and that engine refuses the id the second time, whether it holds it as a replica
 * or as a witness.
 *
 * Invariants:
 * - A witness refuses (STATE_REPLAY_DETECTED) an id it holds, in its store or here, and
 *   otherwise records it until it expires; a replica's check and a primary's own check also
 *   look here (backup-replicas.ts, primary-routing.ts).
 * - A primary whose insert fails after a witness took it asks the witness to forget it
 *   (`grid.unwitness`, best effort): otherwise the client's retry of the same id would be
 *   refused as a replay.
 * - Witnessed ids are bounded (WITNESS_CAP, oldest first) and live in memory; a graceful stop
 *   keeps them with the saved grid state and the next start holds them again (grid-engine.ts),
 *   so a rolling restart does not take a witness out of any majority. A crash forgets them.
 */
import { CohortError } from '../../core/errors.js';
import type { ReplicaState } from './replica-state.js';
import { majorityOf } from './write-majority.js';

/** Most replay ids one engine holds as a witness; past it the oldest are forgotten. */
export const WITNESS_CAP = 1_000_000;
/** Expired ids are swept from the front of the map once per this many new ones. */
const SWEEP_EVERY = 256;

export class ReplayWitnesses {
  /** Replay id → when it expires (ms since the epoch), in the order they came. */
  private readonly held = new Map<string, number>();
  private added = 0;

  constructor(private readonly s: ReplicaState) {
    s.rpc.handle('grid.witness', ({ id, expiresAt }) => {
      if (this.holds(id)) throw new CohortError('STATE_REPLAY_DETECTED', `${id} was seen before`);
      this.record(id, expiresAt);
      return true;
    });
    s.rpc.handle('grid.unwitness', ({ id }) => {
      this.held.delete(id);
      return true;
    });
  }

  /** Whether this engine has seen replay id `id`: as a replica (its store) or as a witness. */
  holds(id: string): boolean {
    if (this.s.store.has('replay', id)) return true;
    const expiresAt = this.held.get(id);
    if (expiresAt === undefined) return false;
    if (expiresAt > this.s.clock.now()) return true;
    this.held.delete(id);
    return false;
  }

  /** How many ids this engine holds as a witness (tests, diagnostics). */
  get size(): number {
    return this.held.size;
  }

  /** The unexpired ids held as a witness, with when each expires, oldest first: what a graceful stop keeps. */
  entries(): Array<[string, number]> {
    const now = this.s.clock.now();
    const out: Array<[string, number]> = [];
    for (const [id, expiresAt] of this.held) if (expiresAt > now) out.push([id, expiresAt]);
    return out;
  }

  /** Holds again the ids kept at the last graceful stop (`entries`), those not expired yet. */
  restore(entries: ReadonlyArray<readonly [string, number]>): number {
    const now = this.s.clock.now();
    let restored = 0;
    for (const [id, expiresAt] of entries) {
      if (expiresAt <= now) continue;
      this.record(id, expiresAt);
      restored++;
    }
    return restored;
  }

  /**
   * The engines that must also hold replay id `id` for the `replicas` (primary first) and them
   * to be a majority of `voters` engines: active engines outside the replica set, in an order
   * that depends on the id (so witnessing spreads over the engines). Empty when the replicas
   * are a majority already; shorter than needed when too few engines are active (the caller
   * refuses the insert).
   */
  witnessesFor(id: string, replicas: readonly string[], voters: number): { addresses: string[]; needed: number } {
    const needed = majorityOf(voters) - replicas.length;
    if (needed <= 0) return { addresses: [], needed: 0 };
    const others = [...this.s.engines.keys()].filter((e) => !replicas.includes(e)).sort();
    if (others.length === 0) return { addresses: [], needed };
    const start = spread(id) % others.length;
    const chosen = [...others.slice(start), ...others.slice(0, start)].slice(0, needed);
    return { addresses: chosen.map((e) => this.s.engines.get(e)!), needed };
  }

  private record(id: string, expiresAt: number): void {
    this.held.delete(id);
    this.held.set(id, expiresAt);
    if (++this.added % SWEEP_EVERY === 0) this.sweep();
    while (this.held.size > WITNESS_CAP) this.held.delete(this.held.keys().next().value!);
  }

  /** Forgets expired ids from the front (ids come with similar lifetimes, so the front expires first). */
  private sweep(): void {
    const now = this.s.clock.now();
    for (const [id, expiresAt] of this.held) {
      if (expiresAt > now) break;
      this.held.delete(id);
    }
  }
}

/** A small, stable number from an id (FNV-1a), to start the witness choice at. */
function spread(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
