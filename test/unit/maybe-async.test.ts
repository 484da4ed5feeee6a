import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { drive, then, wait, type MaybePromise, type Steps } from '../../src/core/maybe-async.js';

/** A sequence of three steps, each answered now or later, with a catch around the second. */
function* sequence(answers: Array<MaybePromise<number>>, log: string[]): Steps<number> {
  const a = yield* wait(answers[0]!);
  log.push(`a=${a}`);
  let b: number;
  try {
    b = yield* wait(answers[1]!);
  } catch (err) {
    log.push(`caught ${(err as Error).message}`);
    b = -1;
  }
  const c = yield* wait(answers[2]!);
  if (c < 0) throw new Error('negative');
  return a + b + c;
}

describe('maybe-async: drive', () => {
  it('runs to its result synchronously while every step is at hand', () => {
    const log: string[] = [];
    const r = drive(sequence([1, 2, 3], log));
    assert.equal(r, 6);
    assert.deepEqual(log, ['a=1']);
  });

  it('goes on asynchronously from the first promise, with later values at hand or not', async () => {
    for (const answers of [[1, Promise.resolve(2), 3], [Promise.resolve(1), 2, Promise.resolve(3)], [1, 2, Promise.resolve(3)]]) {
      const r = drive(sequence(answers, []));
      assert.ok(r instanceof Promise);
      assert.equal(await r, 6);
    }
  });

  it('hands a rejection to the generator, which may catch it, as await would', async () => {
    const log: string[] = [];
    assert.equal(await drive(sequence([1, Promise.reject(new Error('lost')), 3], log)), 3);
    assert.deepEqual(log, ['a=1', 'caught lost']);
  });

  it('throws synchronously before the first promise and rejects after it', async () => {
    assert.throws(() => drive(sequence([1, 2, -10], [])), /negative/);
    await assert.rejects(drive(sequence([Promise.resolve(1), 2, -10], [])) as Promise<number>, /negative/);
    await assert.rejects(drive(sequence([1, 2, Promise.reject(new Error('gone'))], [])) as Promise<number>, /gone/);
  });

  it('then: applies at once to a value, after resolution to a promise', async () => {
    assert.equal(then(2, (v) => v * 2), 4);
    assert.equal(await then(Promise.resolve(2), (v) => v * 2), 4);
  });
});
