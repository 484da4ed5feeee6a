/**
 * `npm run bench:grid-writes` ends with one line other tools read: its format; before it, the
 * CPU a write cost beside Redis's, read from `INFO cpu`.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { cpuLine, redisCpuSeconds, summaryLine } from '../../bench/grid-writes.js';

it('the last line of bench:grid-writes reads `grid-writes: grid <N>/s redis <N>/s ratio <R>`', () => {
  assert.equal(summaryLine({ writesPerSecond: 15022.4, redisWritesPerSecond: 36907.79 }), 'grid-writes: grid 15022/s redis 36908/s ratio 0.41');
  assert.equal(summaryLine({ writesPerSecond: 15022.4, redisWritesPerSecond: undefined }), 'grid-writes: grid 15022/s redis n/a ratio n/a', 'no Redis reachable');
});

it('reads the Redis server\'s own CPU seconds from INFO cpu, not its children\'s or one thread\'s', () => {
  // As Redis 7 answers (CRLF line ends), with the fields that share a prefix.
  const info = [
    '# CPU',
    'used_cpu_sys:12.503211',
    'used_cpu_user:30.250000',
    'used_cpu_sys_children:0.004000',
    'used_cpu_user_children:0.001000',
    'used_cpu_sys_main_thread:11.000000',
    'used_cpu_user_main_thread:29.000000',
    '',
  ].join('\r\n');
  assert.ok(Math.abs(redisCpuSeconds(info) - 42.753211) < 1e-9, String(redisCpuSeconds(info)));
  assert.ok(Number.isNaN(redisCpuSeconds('# CPU\r\nused_cpu_sys_children:1.0\r\n')), 'missing fields are not read as zero');
});

it('prints the CPU a write cost beside the Redis server\'s per SET, or n/a without Redis', () => {
  assert.equal(
    cpuLine({ cpuMicrosPerWrite: 131.24, coresBusy: 1.71, redisServerCpuMicrosPerSet: 15.96, redisClientCpuMicrosPerSet: 9.04 }),
    'grid-writes cpu: grid 131.2 µs a write (3 engines, 1.71 cores busy) redis server 16.0 µs a SET, its client 9.0 µs',
  );
  assert.equal(
    cpuLine({ cpuMicrosPerWrite: 131.24, coresBusy: 1.71, redisServerCpuMicrosPerSet: undefined, redisClientCpuMicrosPerSet: undefined }),
    'grid-writes cpu: grid 131.2 µs a write (3 engines, 1.71 cores busy) redis server n/a a SET, its client n/a',
  );
});
