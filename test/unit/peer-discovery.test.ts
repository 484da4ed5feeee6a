/**
 * DNS discovery: a configured peer given by host name stands for every address the name
 * resolves to. Every address is tried (a name with three addresses joins three separate
 * nodes into one cluster), the name is resolved again while the node runs (a member whose
 * address the answer gains later is found), and a name that does not resolve is listed
 * `not-resolved` and tried again until it does.
 *
 * The nodes are real cluster members on loopback addresses of their own (127.0.0.x, one port
 * for all, as pods behind one headless Service), in this process; names resolve through an
 * injected lookup, never through DNS.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { buildNodeConfig } from '../../src/config/node-config.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import { parseAddressList } from '../../src/config/values.js';
import { freePort } from '../../src/cli/free-port.js';
import type { ClusterInfo } from '../../src/node/cluster-info.js';
import { ClusterMember } from '../../src/node/cluster-member.js';
import { resolvePeers, type PeerLookup } from '../../src/node/peer-discovery.js';
import { waitUntil } from '../helpers/cluster.js';
import { configText, TEST_SECRET } from '../helpers/node-config.js';
import { tmpDir } from '../helpers/tmp.js';

const NAME = 'cohort-peers.test';

/** A resolver whose answers the test changes as it goes; it counts the lookups of each name. */
function fakeDns(): { lookup: PeerLookup; answers: Map<string, string[]>; lookups: Map<string, number> } {
  const answers = new Map<string, string[]>();
  const lookups = new Map<string, number>();
  const lookup: PeerLookup = async (host) => {
    lookups.set(host, (lookups.get(host) ?? 0) + 1);
    const found = answers.get(host);
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
  return { lookup, answers, lookups };
}

/** A started cluster member `id` on `ip:port` (local profile), left gracefully when the test ends. */
async function member(t: TestContext, dir: string, id: string, ip: string, port: number, peers: string, lookup: PeerLookup): Promise<ClusterMember> {
  const text = configText({
    node: { id, role: 'engine', data_dir: `./${id}` },
    cluster: { id: 'dns-test', bind: `${ip}:${port}`, secret_key: TEST_SECRET, profile: 'local', peers },
  });
  const file = `${dir}/${id}.ini`;
  const m = new ClusterMember({
    config: buildNodeConfig(parseConfigText(text, file), file, {}),
    log: silentLogger(),
    clock: systemClock,
    onStopCluster: () => undefined,
    onFatal: (err) => assert.fail(`${id} was refused: ${err.message}`),
    lookup,
  });
  t.after(() => m.leave());
  await m.start();
  return m;
}

const activeIds = (info: ClusterInfo): string[] => info.nodes.filter((n) => n.state === 'active').map((n) => n.id!).sort();

async function allSee(members: ClusterMember[], ids: string[]): Promise<void> {
  for (const m of members) await waitUntil(async () => m.info(), (info) => activeIds(info).join() === [...ids].sort().join(), 10_000);
}

describe('resolving configured peers', () => {
  it('a name stands for each of its addresses, an IP address for itself, and a name that does not resolve is reported', async () => {
    const dns = fakeDns();
    dns.answers.set(NAME, ['10.0.0.1', '10.0.0.2', 'fd00::3']);
    const peers = parseAddressList(`${NAME}:8020, 10.0.0.2:8020, 10.0.0.9:8021, missing.test:8020`);
    assert.deepEqual(await resolvePeers(peers, dns.lookup), {
      addresses: ['10.0.0.1:8020', '10.0.0.2:8020', '[fd00::3]:8020', '10.0.0.9:8021'],
      notResolved: ['missing.test:8020'],
      named: true,
    });
    assert.deepEqual(await resolvePeers(parseAddressList('10.0.0.9:8021'), dns.lookup), { addresses: ['10.0.0.9:8021'], notResolved: [], named: false });
    dns.answers.set('empty.test', []);
    assert.deepEqual((await resolvePeers(parseAddressList('empty.test:1'), dns.lookup)).notResolved, ['empty.test:1'], 'an answer without addresses does not resolve either');
  });
});

describe('DNS discovery between cluster members', () => {
  it('joins through every address of a name: three nodes that started apart become one cluster with the fourth', async (t) => {
    const dir = tmpDir(t);
    const dns = fakeDns();
    const port = await freePort();
    // Three first nodes, each alone: only a node that tries every address joins them all.
    const a = await member(t, dir, 'engine-1', '127.0.0.1', port, '', dns.lookup);
    const b = await member(t, dir, 'engine-2', '127.0.0.2', port, '', dns.lookup);
    const c = await member(t, dir, 'engine-3', '127.0.0.3', port, '', dns.lookup);
    dns.answers.set(NAME, ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const d = await member(t, dir, 'engine-4', '127.0.0.4', port, `${NAME}:${port}`, dns.lookup);
    await allSee([a, b, c, d], ['engine-1', 'engine-2', 'engine-3', 'engine-4']);
    assert.ok(!d.info().nodes.some((n) => n.state === 'not-resolved'));
  });

  it('resolves the name again while it runs, and finds a member whose address the answer gains later', async (t) => {
    const dir = tmpDir(t);
    const dns = fakeDns();
    const port = await freePort();
    dns.answers.set(NAME, ['127.0.0.1', '127.0.0.2']);
    const a = await member(t, dir, 'engine-1', '127.0.0.1', port, `${NAME}:${port}`, dns.lookup);
    const b = await member(t, dir, 'engine-2', '127.0.0.2', port, `${NAME}:${port}`, dns.lookup);
    await allSee([a, b], ['engine-1', 'engine-2']);
    // A node outside the answer, with no peers of its own: nobody knows it.
    const c = await member(t, dir, 'engine-3', '127.0.0.3', port, '', dns.lookup);
    const before = dns.lookups.get(NAME)!;
    await waitUntil(async () => dns.lookups.get(NAME)!, (n) => n > before + 2, 10_000);
    assert.deepEqual(activeIds(c.info()), ['engine-3'], 'not found while the name does not list it');
    dns.answers.set(NAME, ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    await allSee([a, b, c], ['engine-1', 'engine-2', 'engine-3']);
  });

  it('lists a name that does not resolve as not-resolved, tries it again, and joins once it resolves', async (t) => {
    const dir = tmpDir(t);
    const dns = fakeDns();
    const port = await freePort();
    const b = await member(t, dir, 'engine-2', '127.0.0.2', port, '', dns.lookup);
    const a = await member(t, dir, 'engine-1', '127.0.0.1', port, `${NAME}:${port}`, dns.lookup);
    assert.deepEqual(
      a.info().nodes.map((n) => [n.id, n.address, n.state]),
      [['engine-1', `127.0.0.1:${port}`, 'active'], [null, `${NAME}:${port}`, 'not-resolved']],
    );
    const before = dns.lookups.get(NAME)!;
    await waitUntil(async () => dns.lookups.get(NAME)!, (n) => n >= before + 2, 10_000);
    assert.equal(a.info().nodes.find((n) => n.id === null)?.state, 'not-resolved', 'still listed while it does not resolve');
    dns.answers.set(NAME, ['127.0.0.2']);
    await allSee([a, b], ['engine-1', 'engine-2']);
    assert.ok(!a.info().nodes.some((n) => n.state === 'not-resolved'), 'no longer listed once it resolves');
  });
});
