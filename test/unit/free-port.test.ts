/** freePort: ports for listeners other processes bind, never the same one twice from one process. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { candidatePort, freePort } from '../../src/cli/free-port.js';

describe('freePort', () => {
  it('hands out a different port every time, each one free and below the ephemeral range', async () => {
    // At random, 600 picks from some 22,000 ports would repeat one all but once in a few thousand runs.
    const ports: number[] = [];
    for (let i = 0; i < 600; i++) ports.push(await freePort());
    assert.equal(new Set(ports).size, ports.length, 'no port handed out twice');
    const range = (() => {
      try {
        return readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
      } catch {
        return ''; // not Linux
      }
    })();
    const low = Number(range.trim().split(/\s+/)[0]);
    if (low > 12_000) for (const p of ports) assert.ok(p < low, `${p} is below the ephemeral range (${low})`);
    const last = ports.at(-1)!;
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host: '127.0.0.1', port: last }, resolve));
    await new Promise((resolve) => server.close(resolve));
  });

  it('skips the ports browsers and fetch refuse (10080 in its range), and only those', async () => {
    // 10,000 + 80 is the 80th candidate of a range starting at 10,000.
    assert.equal(candidatePort(10_000, 20_000, 80), undefined);
    assert.equal(candidatePort(10_000, 20_000, 20_080), undefined, 'also when the cursor has gone round');
    assert.equal(candidatePort(10_000, 20_000, 79), 10_079);
    assert.equal(candidatePort(10_000, 20_000, 81), 10_081);
    let skipped = 0;
    for (let i = 0; i < 22_768; i++) if (candidatePort(10_000, 22_768, i) === undefined) skipped++;
    assert.equal(skipped, 1, 'one port of 10,000 - 32,767 is refused');
    // Why: Node's fetch (as every browser) refuses that port before it connects.
    await assert.rejects(fetch('http://127.0.0.1:10080/'), (err: Error & { cause?: Error }) => /bad port/.test(String(err.cause?.message)));
  });
});
