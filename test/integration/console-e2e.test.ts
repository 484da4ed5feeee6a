/**
 * Configuration replication between real processes: a console, a replica and three engines on
 * loopback (`polling_delay` 250 ms so health moves in seconds).
 *
 * In order: a PUT reaches the three engines within 500 ms, measured from the console's save to
 * each engine's `config.applied` (p99 over 50 saves; `npm run bench:replication` does 50
 * with 3 and 10 engines); an engine whose saved configuration was changed by hand refuses it
 * and takes a fresh copy with no save on the console; engine health goes green → yellow → red
 * while an engine is paused for 3 then 12 polling intervals, and green again when resumed;
 * promotion is refused while the console answers; the console saves a version the paused
 * replica never pulls, then is killed: engines keep serving, a restarted engine serves with its
 * cached configuration, and one whose cache was tampered with stays not ready; the replica is
 * promoted and engines follow it (the tampered one becomes ready); the old console comes back
 * demoted, cannot push its older configuration, and re-syncs its history from the fork point:
 * both consoles then list the same versions and the same audit trail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode, waitUntil, type TestNode } from '../helpers/cluster.js';
import { runCohort, runCohortToEnd, suiteCleanups } from '../helpers/processes.js';
import type { ConsoleClusterView } from '../../src/console/admin-api.js';
import { percentile } from '../../src/core/stats.js';
import { AUTHORITY_KEY_FILE } from '../../src/policy/console-authority.js';

const POLLING_MS = 250;
const API_KEY = 'console-e2e-api-key-0123456789abcdef';

describe('console, replica and engines: configuration replication, health, promotion', () => {
  const suite = suiteCleanups(after);
  let dir = '';
  let consoleNode: TestNode;
  let replica: TestNode;
  const engines: TestNode[] = [];
  let password = '';

  const overrides = { console: { polling_delay: String(POLLING_MS) }, http: { api_keys: API_KEY } };
  const adminUrl = (n: TestNode): string => `http://${n.config.http!.admin!}`;
  const runtimeUrl = (n: TestNode): string => `http://${n.config.http!.runtime!}`;

  async function token(n: TestNode): Promise<string> {
    const r = await fetch(`${adminUrl(n)}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password }) });
    assert.equal(r.status, 200, await r.clone().text());
    return ((await r.json()) as { token: string }).token;
  }

  async function admin<T = unknown>(n: TestNode, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const r = await fetch(`${adminUrl(n)}${path}`, {
      method,
      headers: { authorization: `Bearer ${await token(n)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: (text ? JSON.parse(text) : {}) as T };
  }

  const view = async (n: TestNode): Promise<ConsoleClusterView> => (await admin<ConsoleClusterView>(n, 'GET', '/admin/v1/cluster')).json;
  const engineView = (v: ConsoleClusterView, id: string) => v.nodes.find((x) => x.id === id)!;

  /** PUT runtime with a rate-limit capacity; resolves with how long until every engine applied it (ms). */
  async function saveAndTime(n: TestNode, capacity: number, watch: TestNode[]): Promise<number> {
    const saved = await admin<{ version: number; createdAt: number }>(n, 'PUT', '/admin/v1/config/runtime', { defaultRateLimit: { capacity, refillPerSecond: 1 } });
    assert.equal(saved.status, 200, JSON.stringify(saved.json));
    const { value } = await waitUntil(() => view(n), (v) => watch.every((e) => engineView(v, e.id).configVersion === saved.json.version), 5000, 20);
    return Math.max(...watch.map((e) => Date.parse(engineView(value, e.id).configAppliedAt!) - saved.json.createdAt));
  }

  async function ready(n: TestNode): Promise<boolean> {
    try {
      return (await fetch(`${runtimeUrl(n)}/health/ready`)).status === 200;
    } catch {
      return false;
    }
  }

  /** How many rate-limit takes engine `n` allows in a burst for a fresh key: the configured capacity. */
  async function burst(n: TestNode, key: string): Promise<number> {
    let allowed = 0;
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${runtimeUrl(n)}/runtime/v1/ratelimit/p/${key}`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
      if (r.status === 200) allowed++;
      else {
        assert.equal(r.status, 429, `${n.id}: ${await r.text()}`);
        break;
      }
    }
    return allowed;
  }

  const cachePath = (n: TestNode): string => join(dir, n.id, 'applied-config.json');

  /** The saved file (encrypted) with one byte of its ciphertext changed: still valid JSON. */
  const flipByte = (t: string): string => {
    const file = JSON.parse(t) as { data: string };
    const data = Buffer.from(file.data, 'base64url');
    data[20] = data[20]! ^ 1;
    return JSON.stringify({ ...file, data: data.toString('base64url') });
  };

  /** Stops engine `i`, changes its saved configuration with `tamper`, and starts it again. */
  async function restartTampered(i: number, tamper: (text: string) => string): Promise<{ forged: string }> {
    const e = engines[i]!;
    process.kill(e.proc.pid, 'SIGTERM');
    await e.proc.exited;
    const text = readFileSync(cachePath(e), 'utf8');
    const forged = tamper(text);
    assert.notEqual(forged, text, 'the tamper changed the file');
    writeFileSync(cachePath(e), forged);
    engines[i] = { ...e, proc: runCohort(suite, ['start', '-c', e.file]) };
    return { forged };
  }

  async function readiness(n: TestNode): Promise<{ status: number; reasons: string[] }> {
    const r = await fetch(`${runtimeUrl(n)}/health/ready`);
    return { status: r.status, reasons: ((await r.json()) as { reasons?: string[] }).reasons ?? [] };
  }

  type VersionRow = { version: number; epoch: number; hash: string; section: string };
  const versions = async (n: TestNode): Promise<VersionRow[]> =>
    (await admin<{ versions: VersionRow[] }>(n, 'GET', '/admin/v1/config/versions?limit=1000')).json.versions.map(({ version, epoch, hash, section }) => ({ version, epoch, hash, section }));
  const auditTrail = async (n: TestNode): Promise<unknown[]> => (await admin<{ records: unknown[] }>(n, 'GET', '/admin/v1/audit?limit=1000')).json.records;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-console-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
    consoleNode = await startNode(suite, dir, 'console', { role: 'console', overrides });
    password = readFileSync(join(dir, 'console', 'admin-password'), 'utf8').trim();
    // The replica is admitted: the console authority is copied into its data directory.
    mkdirSync(join(dir, 'replica'), { recursive: true, mode: 0o700 });
    copyFileSync(join(dir, 'console', AUTHORITY_KEY_FILE), join(dir, 'replica', AUTHORITY_KEY_FILE));
    replica = await startNode(suite, dir, 'replica', { role: 'replica', peers: consoleNode.address, overrides });
    for (const id of ['engine-1', 'engine-2', 'engine-3']) engines.push(await startNode(suite, dir, id, { peers: consoleNode.address, overrides }));
    for (const e of engines) await waitUntil(() => ready(e), (ok) => ok, 15_000, 50);
  });

  it('applies 50 PUTs on the console on every engine, each one waited for (the delays printed)', async (t) => {
    const delays: number[] = [];
    for (let i = 0; i < 50; i++) delays.push(await saveAndTime(consoleNode, 5 + (i % 10), engines));
    // bench:replication measures this against its target (p99 under 500 ms); printed here.
    t.diagnostic(`save to applied on every engine, 50 saves: p50 ${percentile(delays, 50)} ms, p99 ${percentile(delays, 99)} ms`);
    assert.equal(await burst(engines[1]!, 'k-applied'), 14, 'the engine uses the saved rate limit');
    // The replica pulled it too, and reads the same configuration.
    await waitUntil(() => admin<{ version: number }>(replica, 'GET', '/admin/v1/config/runtime'), (r) => r.json.version === 50, 5000, 50);
    // The replica reports its own health from its pulls (green once its last pull is recent:
    // a pull held up on a busy machine shows yellow for a moment); the console sees it in sync.
    await waitUntil(() => view(replica), (v) => v.nodes.find((n) => n.id === 'replica')?.health === 'green', 5000, 50);
    await waitUntil(() => view(consoleNode), (v) => engineView(v, 'replica').replication === 'in-sync', 5000, 50);
  });

  it('keeps schedules (which may hold credentials) off the engines, and their headers out of every repository file in clear', async () => {
    const saved = await admin<{ id: string }>(consoleNode, 'PUT', '/admin/v1/schedules/report', {
      enabled: false, intervalSeconds: 3600, type: 'http', http: { url: 'http://127.0.0.1:9/report', headers: { authorization: 'Bearer schedule-secret-token' } },
    });
    assert.equal(saved.status, 200, JSON.stringify(saved.json));
    await waitUntil(() => view(consoleNode), (x) => engines.every((e) => engineView(x, e.id).configVersion === x.configVersion), 5000, 20);
    for (const e of engines) {
      // Saved encrypted (the version applied is in the console's view above); and no schedule inside it either.
      const applied = readFileSync(join(dir, e.id, 'applied-config.json'), 'utf8');
      assert.equal((JSON.parse(applied) as { format: number }).format, 2);
      assert.ok(!applied.includes('schedule-secret-token'), `${e.id} holds no schedule`);
    }
    // The console's repository and the replica's copy hold the header sealed; the replica took
    // the key with it and shows it to an admin.
    const schedules = await waitUntil(() => admin<{ schedules: Array<{ http: { headers: Record<string, string> } }> }>(replica, 'GET', '/admin/v1/schedules'), (r) => r.json.schedules?.length === 1, 5000, 50);
    assert.equal(schedules.value.json.schedules[0]!.http.headers.authorization, 'Bearer schedule-secret-token');
    for (const id of ['console', 'replica']) {
      for (const file of ['repository.db', 'repository.db-wal']) {
        const path = join(dir, id, file);
        if (existsSync(path)) assert.ok(!readFileSync(path).includes('schedule-secret-token'), `${path} holds the header in clear`);
      }
    }
  });

  it('engines accept the API keys the console issues, and stop accepting a deleted one', async () => {
    const created = await admin<{ id: string; key: string }>(consoleNode, 'POST', '/admin/v1/api-keys', { name: 'e2e' });
    assert.equal(created.status, 201);
    const use = (e: TestNode) => fetch(`${runtimeUrl(e)}/runtime/v1/revocations/x`, { headers: { authorization: `Bearer ${created.json.key}` } }).then((r) => r.status);
    for (const e of engines) await waitUntil(() => use(e), (s) => s === 200, 2000, 20);
    assert.equal((await admin(consoleNode, 'DELETE', `/admin/v1/api-keys/${created.json.id}`)).status, 204);
    for (const e of engines) await waitUntil(() => use(e), (s) => s === 401, 2000, 20);
  });

  it('refuses a saved configuration changed by hand (valid JSON), keeps it aside and takes a fresh copy with no save on the console', async () => {
    const head = (await view(consoleNode)).configVersion;
    const { forged } = await restartTampered(1, flipByte);
    await engines[1]!.proc.waitForOutput(/ENGINE_CONFIG_CACHE_INVALID/, 15_000);
    await waitUntil(() => ready(engines[1]!), (ok) => ok, 15_000, 50);
    assert.equal(await burst(engines[1]!, 'k-fresh-copy'), 14, 'the console\'s value, not the forged one');
    assert.equal(readFileSync(`${cachePath(engines[1]!)}.damaged`, 'utf8'), forged, 'the damaged file is kept aside');
    assert.equal((JSON.parse(readFileSync(cachePath(engines[1]!), 'utf8')) as { format: number }).format, 2, 'the fresh copy saved, encrypted');
    assert.equal((await view(consoleNode)).configVersion, head, 'recovered without a configuration save');
  });

  it('shows engine health green, then yellow and red while the engine is paused, and green again once resumed', async () => {
    const paused = engines[2]!;
    assert.equal(engineView(await view(consoleNode), paused.id).health, 'green');
    process.kill(paused.proc.pid, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, POLLING_MS * 3 + 100));
      assert.equal(engineView(await view(consoleNode), paused.id).health, 'yellow', 'after 3 intervals');
      await new Promise((r) => setTimeout(r, POLLING_MS * 9));
      assert.equal(engineView(await view(consoleNode), paused.id).health, 'red', 'after 12 intervals');
    } finally {
      process.kill(paused.proc.pid, 'SIGCONT');
    }
    await waitUntil(() => view(consoleNode), (v) => engineView(v, paused.id).health === 'green', 10_000, 50);
  });

  it('refuses to promote the replica while the console answers', async () => {
    const refused = await runCohortToEnd(suite, ['replica', 'promote', '-c', replica.file]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr + refused.stdout, /CONSOLE_PROMOTE_REFUSED/);
    assert.equal((await view(replica)).role, 'replica');
  });

  it('with the console killed (after a save the paused replica never pulled), engines keep serving, a restarted engine serves with its cached configuration, and a tampered cache keeps an engine not ready', async () => {
    // A version the replica never pulls: it is paused while the console saves, and the console
    // is gone before it resumes.
    process.kill(replica.proc.pid, 'SIGSTOP');
    try {
      const unpulled = await admin<{ version: number }>(consoleNode, 'PUT', '/admin/v1/config/services', { sessions: { idleTimeoutSeconds: 600 } });
      assert.equal(unpulled.status, 200, JSON.stringify(unpulled.json));
      process.kill(consoleNode.proc.pid, 'SIGKILL');
      await consoleNode.proc.exited;
    } finally {
      process.kill(replica.proc.pid, 'SIGCONT');
    }
    for (const e of engines) assert.equal((await fetch(`${runtimeUrl(e)}/runtime/v1/revocations/x`, { headers: { authorization: `Bearer ${API_KEY}` } })).status, 200);
    const restarted = engines[0]!;
    process.kill(restarted.proc.pid, 'SIGTERM');
    await restarted.proc.exited;
    const proc = runCohort(suite, ['start', '-c', restarted.file]);
    engines[0] = { ...restarted, proc };
    await waitUntil(() => ready(engines[0]!), (ok) => ok, 15_000, 50);
    assert.equal(await burst(engines[0]!, 'k-cached'), 14, 'the cached configuration is in force');

    // A tampered cache with no console to give a fresh copy: not ready, and the forged value is
    // not in force (the defaults are, as for an engine that never had a configuration).
    await restartTampered(1, flipByte);
    await engines[1]!.proc.waitForOutput(/ENGINE_CONFIG_CACHE_INVALID/, 15_000);
    await waitUntil(() => readiness(engines[1]!), (r) => r.status === 503, 15_000, 50);
    const until = Date.now() + POLLING_MS * 8;
    while (Date.now() < until) {
      const r = await readiness(engines[1]!);
      assert.equal(r.status, 503);
      assert.match(r.reasons.join(' '), /ENGINE_CONFIG_CACHE_INVALID/, 'the reason names the refused cache');
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(await burst(engines[1]!, 'k-forged'), 10, 'the default capacity, not the saved 14');
  });

  it('promotes the replica; engines follow the new console', async (t) => {
    const promoted = await runCohortToEnd(suite, ['replica', 'promote', '-c', replica.file]);
    assert.equal(promoted.code, 0, promoted.stderr);
    const v = await view(replica);
    assert.equal(v.role, 'console');
    assert.equal(v.epoch, 1);
    // The engine whose cache was refused gets a fresh copy from the new console, with no save.
    await waitUntil(() => ready(engines[1]!), (ok) => ok, 15_000, 50);
    assert.equal(await burst(engines[1]!, 'k-new-console'), 14);
    // The admin password came over with the users: the same login works on the new console.
    const delay = await saveAndTime(replica, 7, engines);
    t.diagnostic(`a save on the promoted replica applied on every engine after ${delay} ms`);
    for (const e of engines) assert.equal(await burst(e, `k-promoted-${e.id}`), 7);
  });

  it('demotes the old console when it returns, and its older configuration reaches no engine', async () => {
    const proc = runCohort(suite, ['start', '-c', consoleNode.file]);
    consoleNode = { ...consoleNode, proc };
    await proc.waitForOutput(/demoted to replica/, 15_000);
    await proc.waitForOutput(/"msg":"console console started"/, 15_000);
    const old = await view(consoleNode);
    assert.equal(old.role, 'demoted');
    assert.match(old.notes.join(' '), /demoted/);
    const put = await admin<{ error: { code: string } }>(consoleNode, 'PUT', '/admin/v1/config/runtime', { defaultRateLimit: { capacity: 2, refillPerSecond: 1 } });
    assert.equal(put.status, 409);
    assert.equal(put.json.error.code, 'CONSOLE_NOT_ACTIVE');
    await new Promise((r) => setTimeout(r, POLLING_MS * 3));
    for (const e of engines) assert.equal(await burst(e, `k-after-return-${e.id}`), 7, `${e.id} still runs the new console's configuration`);
    // It catches up with the new console's history as its replica.
    await waitUntil(() => admin<{ version: number; epoch: number }>(consoleNode, 'GET', '/admin/v1/config/runtime'), (r) => r.json.epoch === 1, 5000, 50);
    // It dropped the version it saved after the fork point and took the new console's history:
    // both list the same versions (number, epoch, hash) and the same audit trail.
    const theirs = await versions(replica);
    await waitUntil(() => versions(consoleNode), (ours) => JSON.stringify(ours) === JSON.stringify(theirs), 10_000, 100);
    assert.ok(!theirs.some((v) => v.section === 'services'), 'the unpulled save is in neither history');
    const trail = await auditTrail(replica);
    await waitUntil(() => auditTrail(consoleNode), (ours) => JSON.stringify(ours) === JSON.stringify(trail), 10_000, 100);
    // The dropped save stays on record: in the new console's audit trail, marked, and with its
    // content in the old console's data directory.
    const discarded = (trail as Array<{ action: string; node: string; section: string | null }>).filter((r) => r.action === 'config.discarded');
    assert.deepEqual(discarded.map((r) => [r.node, r.section]), [['console', 'services']]);
    const kept = readdirSync(join(dir, 'console')).filter((f) => f.startsWith('dropped-config-'));
    assert.equal(kept.length, 1);
    assert.match(readFileSync(join(dir, 'console', kept[0]!), 'utf8'), /"idleTimeoutSeconds": 600/);
    await consoleNode.proc.waitForOutput(/history re-synced from the fork point/, 5000);
  });
});
