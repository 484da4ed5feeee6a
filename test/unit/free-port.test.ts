/** freePort: ports for listeners other processes bind, never the same one twice from one process. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { candidatePort, claimPort, createPortPicker, forgetOldClaims, freePort, PORT_CLAIM_WINDOW_MS } from '../../src/cli/free-port.js';
import { tmpDir } from '../helpers/tmp.js';

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

  it('never hands out a port another picker on the host claimed, though both start at the same place (two test files side by side once did)', async (t) => {
    const claimsDir = join(tmpDir(t), 'claims');
    const start = 7_000 + Math.floor(Math.random() * 5_000);
    const first = createPortPicker({ claimsDir, start });
    const second = createPortPicker({ claimsDir, start });
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < 40; i++) {
      a.push(await first.next());
      b.push(await second.next());
    }
    const shared = a.filter((p) => b.includes(p));
    assert.deepEqual(shared, [], 'no port handed to both');
    // Without the claims both would walk the same ports from the same start.
    const blind = createPortPicker({ claimsDir: join(tmpDir(t), 'other'), start });
    const c: number[] = [];
    for (let i = 0; i < 40; i++) c.push(await blind.next());
    assert.ok(c.some((p) => a.includes(p)), 'a picker with its own claims meets the same ports');
  });

  it('a claim holds for the window it was made in and the next, and is forgotten after that', (t) => {
    const dir = join(tmpDir(t), 'claims');
    const w = PORT_CLAIM_WINDOW_MS;
    const at = 1_000 * w + 10;
    assert.equal(claimPort(dir, 20_001, at), true, 'first claim');
    assert.equal(claimPort(dir, 20_001, at + 1), false, 'same window');
    assert.equal(claimPort(dir, 20_001, at + w), false, 'next window');
    assert.equal(claimPort(dir, 20_002, at + w), true, 'another port');
    assert.equal(claimPort(dir, 20_001, at + 2 * w), true, 'two windows later the claim has lapsed');
    forgetOldClaims(dir, at + 3 * w);
    assert.equal(existsSync(join(dir, String(1_000))), false, 'old window removed');
    assert.equal(existsSync(join(dir, String(1_002))), true, 'the window before now kept');
  });

  it('without a usable claims folder every free port may be taken (the bind check still holds)', async (t) => {
    const dir = join(tmpDir(t), 'claims');
    mkdirSync(dir);
    const notAFolder = join(dir, 'file');
    writeFileSync(notAFolder, '');
    assert.equal(claimPort(notAFolder, 20_003, Date.now()), true);
    const picker = createPortPicker({ claimsDir: notAFolder });
    const port = await picker.next();
    assert.ok(port > 0);
  });
});
