/**
 * A cluster over real links between hosts: a console and three engines, each `cohort start`
 * in a network namespace of its own with its own address on a shared network (a bridge), on
 * the `lan` timing profile, as one data centre runs it (test/helpers/netns.ts builds the hosts;
 * the test calls each node's HTTP APIs on a management link of its own, which the cuts below
 * leave alone).
 *
 * - Discovery is DNS-style: every node's `peers` is one name whose answer lists every host's
 *   address (a headless Service), resolved through the test stand-in for DNS
 *   (test/helpers/fake-dns.ts); the cluster forms with every node seeing every other active.
 * - Sessions and revocations are written through every engine's runtime API.
 * - One engine's link goes down (a host cut off): the two other engines, a majority of the
 *   three, keep serving reads and writes; the cut-off engine refuses writes (503
 *   STATE_UNAVAILABLE, and says so in /health/ready). Where the kernel has netem, one of the
 *   majority's links is also slowed for the time of the partition.
 * - The link comes up again: membership converges within 10 s, and every acknowledged session
 *   and revocation, written before or during the partition, reads back through every engine.
 *
 * Skipped with a loud notice where network namespaces cannot be made (not root, no iproute2);
 * a failure under COHORT_REQUIRE_SERVICES=1.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterInfo } from '../../src/node/cluster-info.js';
import { clusterInfoOf, startNode, stateOf, waitUntil, type TestNode } from '../helpers/cluster.js';
import { fakeDnsEnv } from '../helpers/fake-dns.js';
import { netnsLab, netnsOrSkip, type NetnsHost, type NetnsLab } from '../helpers/netns.js';
import { tmpDir } from '../helpers/tmp.js';

const PEERS_NAME = 'cohort-hosts.test';
// Every host has its own addresses, so every node uses the same ports, as pods of one
// StatefulSet do: the peers name needs only one port.
const CLUSTER_PORT = 8020;
const MANAGE_PORT = 9100;
const RUNTIME_PORT = 9000;
const ADMIN_PORT = 9080;
/** The delay added to one majority engine's link during the partition, each way (where netem exists). */
const DELAY_MS = 40;
/** What the issue requires of membership after a partition heals. */
const CONVERGENCE_LIMIT_MS = 10_000;

interface Engine {
  node: TestNode;
  host: NetnsHost;
  runtime: string;
}

const API_KEY = randomBytes(24).toString('base64url');

interface Reply {
  status: number;
  body: Record<string, unknown> | undefined;
}

async function call(engine: Engine, method: string, path: string, body?: unknown): Promise<Reply> {
  const r = await fetch(`${engine.runtime}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const errorCode = (r: Reply): string | undefined => (r.body?.error as { code?: string } | undefined)?.code;

interface Readiness {
  /** 200: the engine holds its configuration, partitions and revocation list. */
  httpStatus: number;
  reasons?: string[];
  writes?: { accepted: boolean; reason?: string };
}

async function readiness(engine: Engine): Promise<Readiness> {
  const r = await fetch(`${engine.runtime}/health/ready`, { signal: AbortSignal.timeout(5000) });
  return { ...((await r.json()) as Omit<Readiness, 'httpStatus'>), httpStatus: r.status };
}

/** The ids a node sees active, sorted and joined. */
const activeIds = (info: ClusterInfo): string => info.nodes.filter((n) => n.state === 'active').map((n) => n.id).sort().join(',');

/** What the test wrote and the cluster acknowledged. */
class Acknowledged {
  /** Live sessions: id to subject. */
  readonly sessions = new Map<string, string>();
  /** Sessions deleted (logged out): their ids are revoked. */
  readonly loggedOut = new Set<string>();
  /** Ids revoked through POST /runtime/v1/revocations. */
  readonly revoked = new Set<string>();

  /** Writes refused (503 STATE_UNAVAILABLE) and tried again, by `write` with `retryRefused`. */
  refusedAndRetried = 0;

  /**
   * Writes `count` sessions, one in four then logged out, and `count / 2` revocations, through
   * `engine`; every write must be acknowledged. With `retryRefused`, a write refused with 503
   * STATE_UNAVAILABLE (undone: a replica did not answer in time) is tried again, as a client
   * would, for up to 60 s: right after a heal a replica may be slow while it resynchronises.
   */
  async write(engine: Engine, phase: string, count: number, retryRefused = false): Promise<void> {
    const send = async (method: string, path: string, body?: unknown): Promise<Reply> => {
      const until = performance.now() + 60_000;
      for (;;) {
        const r = await call(engine, method, path, body);
        if (!retryRefused || r.status !== 503 || errorCode(r) !== 'STATE_UNAVAILABLE' || performance.now() > until) return r;
        this.refusedAndRetried++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    for (let i = 0; i < count; i++) {
      const subject = `${phase}-${engine.node.id}-${i}`;
      const created = await send('POST', '/runtime/v1/sessions', { subject });
      assert.equal(created.status, 201, `${phase}: session ${subject} through ${engine.node.id}: ${JSON.stringify(created.body)}`);
      const id = String(created.body!.id);
      if (i % 4 === 3) {
        const out = await send('DELETE', `/runtime/v1/sessions/${id}`);
        assert.equal(out.status, 204, `${phase}: logout of ${subject} through ${engine.node.id}: ${JSON.stringify(out.body)}`);
        this.loggedOut.add(id);
      } else {
        this.sessions.set(id, subject);
      }
      if (i % 2 === 0) {
        const token = `token-${phase}-${engine.node.id}-${i}-${randomBytes(4).toString('hex')}`;
        const r = await send('POST', '/runtime/v1/revocations', { id: token });
        assert.equal(r.status, 204, `${phase}: revocation ${token} through ${engine.node.id}: ${JSON.stringify(r.body)}`);
        this.revoked.add(token);
      }
    }
  }

  /** What `engine` answers wrongly about the acknowledged writes: empty when it has every one. */
  async missingOn(engine: Engine): Promise<string[]> {
    const wrong: string[] = [];
    for (const [id, subject] of this.sessions) {
      const r = await call(engine, 'GET', `/runtime/v1/sessions/${id}`);
      if (r.status !== 200 || r.body?.subject !== subject) wrong.push(`session ${subject}: ${r.status} ${errorCode(r) ?? ''}`);
    }
    for (const id of [...this.loggedOut, ...this.revoked]) {
      const r = await call(engine, 'GET', `/runtime/v1/revocations/${id}`);
      if (r.status !== 200 || r.body?.revoked !== true) wrong.push(`revocation ${id}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    for (const id of this.loggedOut) {
      const r = await call(engine, 'GET', `/runtime/v1/sessions/${id}`);
      if (r.status !== 404) wrong.push(`logged-out session ${id} answered ${r.status}`);
    }
    return wrong;
  }

  counts(): string {
    return `${this.sessions.size} live sessions, ${this.loggedOut.size} logged out, ${this.revoked.size} revocations`;
  }
}

async function startHosts(t: TestContext, lab: NetnsLab, dir: string): Promise<{ nodes: TestNode[]; engines: Engine[] }> {
  const dnsFile = join(dir, 'dns.json');
  writeFileSync(dnsFile, JSON.stringify({ [PEERS_NAME]: lab.hosts.map((h) => h.address) }));
  const env = fakeDnsEnv(dnsFile);
  const nodes = await Promise.all(
    lab.hosts.map((h) => {
      const role = h.label === 'console' ? 'console' : 'engine';
      const http = role === 'console'
        ? { manage: `${h.mgmtAddress}:${MANAGE_PORT}`, admin: `${h.mgmtAddress}:${ADMIN_PORT}`, runtime: undefined }
        : { manage: `${h.mgmtAddress}:${MANAGE_PORT}`, runtime: `${h.mgmtAddress}:${RUNTIME_PORT}`, admin: undefined, api_keys: API_KEY };
      return startNode(t, dir, h.label, {
        role,
        env,
        prefix: h.prefix,
        overrides: {
          cluster: { bind: `${h.address}:${CLUSTER_PORT}`, peers: `${PEERS_NAME}:${CLUSTER_PORT}`, profile: 'lan' },
          http,
        },
      });
    }),
  );
  const engines = nodes
    .filter((n) => n.config.node!.role === 'engine')
    .map((node) => {
      const host = lab.host(node.id);
      return { node, host, runtime: `http://${host.mgmtAddress}:${RUNTIME_PORT}` };
    });
  return { nodes, engines };
}

/** The slowest time (ms) for every node in `nodes` to see exactly `ids` active. */
async function allSee(nodes: TestNode[], ids: string[], timeoutMs: number): Promise<number> {
  const want = [...ids].sort().join(',');
  const times = await Promise.all(nodes.map(async (n) => (await waitUntil(() => clusterInfoOf(n.file), (i) => activeIds(i) === want, timeoutMs, 50)).elapsedMs));
  return Math.max(...times);
}

/** The slowest time (ms) for every node in `observers` to report each of `ids` inactive (declared failed, not only suspect). */
async function allSeeInactive(observers: TestNode[], ids: string[], timeoutMs: number): Promise<number> {
  const times = await Promise.all(observers.map(async (n) => (await waitUntil(() => clusterInfoOf(n.file), (i) => ids.every((id) => stateOf(i, id) === 'inactive'), timeoutMs, 50)).elapsedMs));
  return Math.max(...times);
}

describe('a cluster across hosts (network namespaces)', () => {
  it('forms over DNS-style discovery, keeps serving on the majority side of a cut link, refuses writes on the minority, and converges without losing an acknowledged write', async (t) => {
    if (!(await netnsOrSkip(t))) return;
    const dir = tmpDir(t);
    const lab = await netnsLab(t, ['console', 'engine-1', 'engine-2', 'engine-3']);
    const figures: string[] = [];
    const note = (line: string): void => {
      figures.push(line);
      t.diagnostic(line);
    };

    // ---- formation
    const startedAt = performance.now();
    const { nodes, engines } = await startHosts(t, lab, dir);
    const ids = nodes.map((n) => n.id);
    await allSee(nodes, ids, 30_000);
    const formedMs = performance.now() - startedAt;
    note(`formation: ${nodes.length} nodes on ${lab.subnet}, found through one name with ${lab.hosts.length} addresses, all active on every node ${Math.round(formedMs)} ms after the first start`);
    for (const n of nodes) {
      const info = await clusterInfoOf(n.file);
      assert.deepEqual(info.nodes.filter((m) => m.state === 'not-resolved'), [], `${n.id} resolved ${PEERS_NAME}`);
      assert.deepEqual(info.nodes.map((m) => m.address).sort(), lab.hosts.map((h) => `${h.address}:${CLUSTER_PORT}`).sort(), `${n.id} knows every host at its own address`);
    }
    // Ready, not only started: an engine still downloading its share holds no partition, and
    // what is written meanwhile has its copies on the engines already serving alone.
    const ready = await Promise.all(engines.map((e) => waitUntil(() => readiness(e), (r) => r.httpStatus === 200 && r.writes?.accepted === true, 60_000, 100)));
    note(`every engine ready (partitions and revocation list held) ${Math.round(performance.now() - startedAt)} ms after the first start (${engines.map((e, i) => `${e.node.id} after ${Math.round(ready[i]!.elapsedMs)} ms more`).join(', ')})`);

    const acked = new Acknowledged();
    for (const e of engines) await acked.write(e, 'before', 8);
    note(`before the partition: ${acked.counts()} acknowledged through the 3 engines`);

    // ---- partition: engine-3's host cut off
    const [e1, e2, e3] = engines as [Engine, Engine, Engine];
    const majority = nodes.filter((n) => n.id !== e3.node.id);
    const delayed = await lab.delay(e2.host, DELAY_MS);
    if (delayed) note(`netem: ${DELAY_MS} ms each way on ${e2.node.id}'s link for the partition`);
    else {
      const notice = `netem delay not available here (no tc, or no sch_netem in the kernel): the slow-link part is skipped; the partition is a link down`;
      process.stderr.write(`\n*** NOTICE: ${notice} ***\n\n`);
      note(notice);
    }
    const cutAt = performance.now();
    await lab.cut(e3.host);
    // Until the cut-off engine finds itself alone, it may still take writes: one a second is
    // tried through it, and any it acknowledges joins what must survive the heal.
    const early = new Map<string, number>();
    const cutOff = new Map<string, string>();
    let minorityNoticed = false;
    const tryMinority = (async () => {
      for (let i = 0; !minorityNoticed; i++) {
        const r = await call(e3, 'POST', '/runtime/v1/sessions', { subject: `cut-off-${i}` }).catch((err: Error) => ({ status: 0, body: { error: { code: err.name } } }) as Reply);
        const outcome = r.status === 0 ? `no answer (${errorCode(r)})` : `${r.status}${errorCode(r) ? ` ${errorCode(r)}` : ''}`;
        early.set(outcome, (early.get(outcome) ?? 0) + 1);
        if (r.status === 201) cutOff.set(String(r.body!.id), `cut-off-${i}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    })();
    const [majoritySaw, majorityWrites, minorityRefused] = await Promise.all([
      allSeeInactive(majority, [e3.node.id], 60_000),
      // The majority's first write may wait for the partitions the cut-off engine held to move.
      waitUntil(() => call(e1, 'POST', '/runtime/v1/sessions', { subject: 'majority-probe' }), (r) => r.status === 201, 60_000, 100).then(({ value }) => {
        acked.sessions.set(String(value.body!.id), 'majority-probe');
        return performance.now() - cutAt;
      }),
      waitUntil(() => readiness(e3), (r) => r.writes?.accepted === false, 60_000, 100).then((r) => r.elapsedMs).finally(() => (minorityNoticed = true)),
    ]);
    await tryMinority;
    note(`partition detected: every node of the majority declared ${e3.node.id} inactive after ${Math.round(majoritySaw)} ms and acknowledged writes ${Math.round(majorityWrites)} ms after the cut; ${e3.node.id} refused writes after ${Math.round(minorityRefused)} ms`);
    note(`writes tried through ${e3.node.id} before it refused: ${[...early].map(([k, v]) => `${v} x ${k}`).join(', ')}`);

    const beforeCount = acked.sessions.size;
    for (const e of [e1, e2]) await acked.write(e, 'during', 8);
    note(`during the partition: ${acked.sessions.size - beforeCount} more live sessions and their revocations acknowledged by the majority (${acked.counts()} in all)`);
    for (const e of [e1, e2]) assert.deepEqual(await acked.missingOn(e), [], `${e.node.id} reads every acknowledged write during the partition`);

    // The minority side: refuses changes with the write-majority code, and says why.
    const refused = await call(e3, 'POST', '/runtime/v1/sessions', { subject: 'minority' });
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(errorCode(refused), 'STATE_UNAVAILABLE');
    const refusedRevocation = await call(e3, 'POST', '/runtime/v1/revocations', { id: 'minority-token' });
    assert.equal(refusedRevocation.status, 503, JSON.stringify(refusedRevocation.body));
    assert.equal(errorCode(refusedRevocation), 'STATE_UNAVAILABLE');
    assert.match((await readiness(e3)).writes?.reason ?? '', /sees 1 of 3 voters/);
    assert.equal((await clusterInfoOf(e3.node.file)).nodes.find((n) => n.id === e3.node.id)?.writes, 'refused');
    // It refuses once the engines are out of its view; the console, no voter with three
    // engines, may be declared a moment later.
    await allSeeInactive([e3.node], ids.filter((id) => id !== e3.node.id), 60_000);
    note(`${e3.node.id} declared every other node inactive ${Math.round(performance.now() - cutAt)} ms after the cut`);

    // ---- heal
    for (const [id, subject] of cutOff) acked.sessions.set(id, subject);
    if (delayed) await lab.undelay(e2.host);
    const healAt = performance.now();
    await lab.heal(e3.host);
    const perNode = await Promise.all(nodes.map(async (n) => ({ id: n.id, ms: await allSee([n], ids, 60_000) })));
    const convergedMs = Math.max(...perNode.map((p) => p.ms));
    note(`heal: every node saw all ${ids.length} active ${Math.round(convergedMs)} ms after the link came up (required: within ${CONVERGENCE_LIMIT_MS} ms; ${perNode.map((p) => `${p.id} ${Math.round(p.ms)}`).join(', ')})`);
    const writesBack = await waitUntil(() => readiness(e3), (r) => r.httpStatus === 200 && r.writes?.accepted === true, 60_000, 100);
    note(`heal: ${e3.node.id} accepted writes again ${Math.round(performance.now() - healAt)} ms after the link came up (its readiness poll: ${Math.round(writesBack.elapsedMs)} ms)`);

    // Every acknowledged write, through every engine (the one that was cut off catches up).
    const readBack = await Promise.all(engines.map(async (e) => {
      const { value, elapsedMs } = await waitUntil(() => acked.missingOn(e), (wrong) => wrong.length === 0, 60_000, 250).catch(async () => ({ value: await acked.missingOn(e), elapsedMs: NaN }));
      return { id: e.node.id, wrong: value, elapsedMs };
    }));
    for (const r of readBack) {
      note(`read back through ${r.id}: ${r.wrong.length} of ${acked.sessions.size + acked.loggedOut.size * 2 + acked.revoked.size} checks wrong${Number.isNaN(r.elapsedMs) ? '' : ` (all right after ${Math.round(r.elapsedMs)} ms)`}`);
      assert.deepEqual(r.wrong, [], `${r.id} has every acknowledged session and revocation`);
    }
    // Writes through the healed engine reach the others. They may still meet a replica busy
    // resynchronising the partitions that changed on the majority side (an answer later than
    // the replication timeout: 503, undone), so each is tried until acknowledged, and the
    // refusals are counted.
    let refusedAfterHeal = 0;
    const firstAfter = await waitUntil(async () => {
      const r = await call(e3, 'POST', '/runtime/v1/sessions', { subject: 'after-heal' });
      if (r.status !== 201) refusedAfterHeal++;
      return r;
    }, (r) => r.status === 201, 60_000, 100);
    acked.sessions.set(String(firstAfter.value.body!.id), 'after-heal');
    note(`after the heal: the first write through ${e3.node.id} acknowledged ${Math.round(performance.now() - healAt)} ms after the link came up (${refusedAfterHeal} refused before it)`);
    await acked.write(e3, 'after', 4, true);
    note(`after the heal: ${acked.refusedAndRetried} of the next writes through ${e3.node.id} refused (503) and tried again`);
    for (const e of [e1, e2]) assert.deepEqual(await acked.missingOn(e), [], `${e.node.id} reads the writes made through ${e3.node.id} after the heal`);

    // The issue's bound, asserted last so that a slow convergence on a busy machine still
    // shows every other figure first.
    console.log(`multi-host (netns): ${figures.join('; ')}`);
    assert.ok(convergedMs <= CONVERGENCE_LIMIT_MS, `membership converged ${Math.round(convergedMs)} ms after the heal, over the ${CONVERGENCE_LIMIT_MS} ms required`);
  });
});
