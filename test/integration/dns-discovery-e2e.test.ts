/**
 * DNS discovery between `cohort start` processes: nodes on loopback addresses of their own
 * (127.0.0.1, .2, .3, one cluster port for all, as pods behind a headless Service) configured
 * with one peer name find every node the name lists, and find a node the name lists only later,
 * by resolving it again while they run. The name resolves through a test stand-in for DNS
 * (test/helpers/fake-dns.ts) whose answers the test changes; no DNS server or /etc/hosts entry
 * is involved.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../src/cli/free-port.js';
import type { ClusterInfo } from '../../src/node/cluster-info.js';
import { clusterInfoOf, startNode, waitUntil, type TestNode } from '../helpers/cluster.js';
import { fakeDnsEnv } from '../helpers/fake-dns.js';
import { tmpDir } from '../helpers/tmp.js';

const NAME = 'cohort-peers.test';

const activeIds = (info: ClusterInfo): string => info.nodes.filter((n) => n.state === 'active').map((n) => n.id).sort().join(',');

async function allSee(nodes: TestNode[], ids: string[]): Promise<number> {
  let slowest = 0;
  for (const n of nodes) slowest = Math.max(slowest, (await waitUntil(() => clusterInfoOf(n.file), (i) => activeIds(i) === ids.join(','), 20_000, 50)).elapsedMs);
  return slowest;
}

describe('DNS discovery between processes', () => {
  it('nodes configured with one name find every node it lists, and a node it lists later', async (t) => {
    const dir = tmpDir(t);
    const dnsFile = join(dir, 'dns.json');
    writeFileSync(dnsFile, JSON.stringify({ [NAME]: ['127.0.0.1', '127.0.0.2'] }));
    const env = fakeDnsEnv(dnsFile);
    const port = await freePort();
    const peers = `${NAME}:${port}`;
    const a = await startNode(t, dir, 'engine-1', { peers, env, overrides: { cluster: { bind: `127.0.0.1:${port}` } } });
    const b = await startNode(t, dir, 'engine-2', { peers, env, overrides: { cluster: { bind: `127.0.0.2:${port}` } } });
    // Not listed under the name yet, and with no peers of its own.
    const c = await startNode(t, dir, 'engine-3', { env, overrides: { cluster: { bind: `127.0.0.3:${port}` } } });
    const formed = await allSee([a, b], ['engine-1', 'engine-2']);
    assert.equal(activeIds(await clusterInfoOf(c.file)), 'engine-3');

    writeFileSync(dnsFile, JSON.stringify({ [NAME]: ['127.0.0.1', '127.0.0.2', '127.0.0.3'] }));
    const found = await allSee([a, b, c], ['engine-1', 'engine-2', 'engine-3']);
    console.log(`two nodes formed a cluster through ${NAME} within ${Math.round(formed)} ms; the third, added to the name's answer, was active on every node ${Math.round(found)} ms later`);
  });
});
