/**
 * Loaded into a node with `node --import` by bench/membership.ts: blocks the event loop for
 * 400 ms every 2 s (a long garbage-collection pause or a CPU-bound request), without any
 * change to the node's own code.
 */
const BLOCK_MS = 400;
const EVERY_MS = 2000;

setInterval(() => {
  const end = performance.now() + BLOCK_MS;
  while (performance.now() < end) {
    // busy: nothing else on this thread runs
  }
}, EVERY_MS).unref();
