/**
 * Keeps the shape of Node's `process.nextTick` records alive for the life of the process.
 *
 * Why: Node builds each nextTick record as an object literal whose first keys are computed
 * (its async-id symbols). V8 gives such a literal a hidden class (map) from a cache that holds
 * its entries weakly; a major garbage collection that runs while no nextTick record is alive
 * (an idle node: memory-reducing collections) clears the entry, and the next record gets a
 * new class. After a few such collections the literal's definition site has seen too many
 * classes, V8 gives up on it, and every nextTick from then on defines its properties through
 * the runtime's slow path — in Node's own HTTP server that is several ticks per request
 * (`resOnFinish`, `Readable.resume`, the write callbacks). Measured on a bare `node:http`
 * server with wrk: 101,700 requests/s fresh, 71,700 after a dozen idle major collections,
 * 101,600 with the record kept; on an engine's forward-auth lane the slow path took about
 * 2.6 µs of a 20 µs request (docs/benchmarks.md).
 *
 * Holding one record keeps its class, and the chain of classes it was built through, alive,
 * so the cache entry is never cleared and the site keeps its single class. The record is the
 * one a tick's callback runs under (`executionAsyncResource`). Not an async hook: enabling one,
 * even for an instant, installs V8's promise hooks, which slows every later `await` of the
 * process for good (51 → 145 ns an await, measured). Called first thing in a node's start,
 * before the site has been used much; the record is held from the next tick on.
 */
import { executionAsyncResource } from 'node:async_hooks';

/** The record kept (one per process), undefined until the tick scheduled by `keepTickObjectShape` ran. */
let kept: object | undefined;
let scheduled = false;

/** Schedules the catch of one nextTick record, kept from then on; once per process. */
export function keepTickObjectShape(): void {
  if (scheduled) return;
  scheduled = true;
  process.nextTick(() => {
    kept = executionAsyncResource();
  });
}

/** The nextTick record kept, once the tick scheduled by `keepTickObjectShape` has run (tests). */
export function keptTickObject(): object | undefined {
  return kept;
}
