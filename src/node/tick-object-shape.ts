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
 * so the cache entry is never cleared and the site keeps its single class. The record is
 * caught with an async-hooks `init` callback that is enabled for one nextTick and disabled at
 * once. Called early in a node's start, before the site has been used much.
 */
import { createHook } from 'node:async_hooks';

/** The record kept (one per process), undefined until `keepTickObjectShape` caught one. */
let kept: object | undefined;

/**
 * Catches and keeps one nextTick record; returns it (the same one on every later call). A
 * Node that gives no record to the hook (a future change of its internals) leaves nothing
 * kept and nothing enabled: the returned value is then undefined.
 */
export function keepTickObjectShape(): object | undefined {
  if (kept !== undefined) return kept;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type !== 'TickObject' || kept !== undefined) return;
      kept = resource;
      hook.disable();
    },
  });
  hook.enable();
  try {
    // The record is made (and the hook told) here, synchronously; its callback does nothing.
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
  return kept;
}

function noop(): void {}
