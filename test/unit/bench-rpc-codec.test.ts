/**
 * `npm run bench:rpc-codec`, a short run: both forms measured, every call answered (the bench
 * throws otherwise). Figures are the bench's business; this checks it runs and reports them.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { measureRpcCodec } from '../../bench/rpc-codec.js';

it('bench:rpc-codec measures the RPC layer\'s CPU per replication call in JSON and in MessagePack', async () => {
  const f = await measureRpcCodec({ calls: 2000, batch: 64, rounds: 1 });
  assert.equal(f.calls, 2000);
  assert.ok(f.jsonUs > 0 && f.compactUs > 0, JSON.stringify(f));
});
