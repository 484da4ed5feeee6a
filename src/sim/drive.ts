/**
 * Drives simulated time for code that awaits promises (rpc, the grid). A ManualClock runs
 * due timers synchronously, but what those timers resolve continues only on a turn of the
 * real event loop; so time advances in small steps with a turn after each.
 */

/** One turn of the real event loop: promise chains started by simulated events run on. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Advances simulated time `stepMs` at a time until `done()` holds or `limitMs` has passed;
 * returns whether `done()` held.
 */
export async function runUntil(advance: (ms: number) => void, done: () => boolean, limitMs: number, stepMs: number): Promise<boolean> {
  for (let t = 0; t < limitMs; t += stepMs) {
    if (done()) return true;
    advance(stepMs);
    await nextTurn();
  }
  return done();
}

/** Advances simulated time until `promise` settles, and settles like it; throws after `limitMs` without an answer. */
export async function settleSimulated<T>(promise: Promise<T>, advance: (ms: number) => void, limitMs: number, stepMs: number): Promise<T> {
  let outcome: { value: T } | { error: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  await runUntil(advance, () => outcome !== undefined, limitMs, stepMs);
  if (!outcome) throw new Error('no answer');
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}
