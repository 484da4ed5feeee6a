import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { keepTickObjectShape, keptTickObject } from '../../src/node/tick-object-shape.js';

const MODULE = fileURLToPath(new URL('../../src/node/tick-object-shape.js', import.meta.url));

describe('the nextTick record kept for its shape', () => {
  it('is a real nextTick record (its async-id symbols, its callback), the same one after later calls', async () => {
    keepTickObjectShape();
    await new Promise((resolve) => setImmediate(resolve));
    const kept = keptTickObject();
    assert.ok(kept !== undefined, 'a record was caught');
    assert.equal(Object.getOwnPropertySymbols(kept).length, 2, 'the async id and the trigger id');
    assert.equal(typeof (kept as { callback?: unknown }).callback, 'function');
    keepTickObjectShape();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(keptTickObject(), kept);
  });

  it('keeps the class new records get, through major collections while no other record lives', () => {
    // V8's own check of two objects' hidden classes needs --allow-natives-syntax: a child process.
    const script = `
      const { createHook } = await import('node:async_hooks');
      const { keepTickObjectShape, keptTickObject } = await import(${JSON.stringify(MODULE)});
      keepTickObjectShape();
      await new Promise((resolve) => setImmediate(resolve));
      const kept = keptTickObject();
      const newRecord = () => {
        let got;
        const hook = createHook({ init(_id, type, _trigger, resource) { if (type === 'TickObject' && got === undefined) got = resource; } }).enable();
        process.nextTick(() => {});
        hook.disable();
        return got;
      };
      const same = [];
      for (let i = 0; i < 6; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        globalThis.gc();
        same.push(%HaveSameMap(kept, newRecord()));
      }
      process.stdout.write(JSON.stringify(same));
    `;
    const child = spawnSync(process.execPath, ['--expose-gc', '--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), [true, true, true, true, true, true]);
  });
});
