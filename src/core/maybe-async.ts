/**
 * Code that is asynchronous only sometimes, written once: a step that may have its answer at
 * hand (a cached session, a revocation list held in memory, a token of a local rate-limit
 * allotment) returns it as it is, and a promise only when it must wait. A sequence of such
 * steps is a generator that `yield*`s `wait(step)` where an async function would `await`:
 * `drive` runs it synchronously for as long as every step answers at once, and goes on
 * asynchronously from the first one that returns a promise.
 *
 * Why: every `await` costs a promise and a turn of the microtask queue even when the value is
 * already known, and an access decision that needs no round trip was paying for half a dozen
 * of them, a noticeable share of the engine's time per request (docs/benchmarks.md).
 */

/** A value now, or one to wait for. */
export type MaybePromise<T> = T | Promise<T>;

export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return v instanceof Promise;
}

/** The generator a driven sequence is: it yields what it waits for and returns its result. */
export type Steps<T> = Generator<unknown, T, unknown>;

/** `yield* wait(step)` in a driven generator: the step's value, waited for only if it is a promise. */
export function* wait<T>(step: MaybePromise<T>): Generator<MaybePromise<T>, T, unknown> {
  return (yield step) as T;
}

/**
 * Runs `steps` to its result: synchronously while each yielded value is at hand; from the first
 * promise on, as a promise. A throw inside the generator, or a rejected step, ends it the way
 * `throw` would end an async function: synchronously (thrown) before the first promise, as a
 * rejection after it; a generator that catches it goes on as it would have.
 */
export function drive<T>(steps: Steps<T>): MaybePromise<T> {
  let step = steps.next();
  for (;;) {
    if (step.done) return step.value;
    if (step.value instanceof Promise) return driveAsync(steps, step.value);
    step = steps.next(step.value);
  }
}

async function driveAsync<T>(steps: Steps<T>, first: Promise<unknown>): Promise<T> {
  let pending: unknown = first;
  for (;;) {
    let step: IteratorResult<unknown, T>;
    try {
      step = steps.next(await pending);
    } catch (err) {
      // Either the awaited step rejected or the generator threw; throw() tells the generator
      // only in the first case (a generator that threw is already closed and rethrows).
      step = steps.throw(err);
    }
    if (step.done) return step.value;
    pending = step.value;
  }
}

/** `f(value)` now if `value` is at hand, else once it resolves. */
export function then<T, U>(value: MaybePromise<T>, f: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(f) : f(value);
}
