/**
 * Configuration replication between two console nodes over real repositories (SQLite and
 * PostgreSQL), their RPC carried by an in-memory network with JSON round trips: a full copy on
 * request, the divergence check of an export, and the re-sync of a console demoted after a
 * promotion, which saved more versions than one page of history while its replica was away.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import type { Member } from '../../src/cluster/member-list.js';
import type { ClusterInfo } from '../../src/node/cluster-info.js';
import { ConsoleRole, DROPPED_CONFIG_PREFIX } from '../../src/console/console-role.js';
import type { ExportAnswer, ExportRequest } from '../../src/console/config-publisher.js';
import type { FetchAnswer } from '../../src/engine/config-follower.js';
import type { AuditRecord, Repository } from '../../src/repository/repository.js';
import type { Rpc, RpcHandler } from '../../src/rpc/rpc.js';
import { waitUntil } from '../helpers/cluster.js';
import { postgresRepository, sqliteRepository } from '../helpers/repositories.js';
import { tmpDir } from '../helpers/tmp.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadAuthority, type ConsoleAuthority } from '../../src/policy/console-authority.js';
import { openKeyFromConsole, replicaProof, signAnswer, type ReplicaProof } from '../../src/console/role-proofs.js';
import { ConfigService } from '../../src/console/config-service.js';
import { SECRETS_KEY_FILE } from '../../src/core/sealed-secrets.js';
import { contentHash } from '../../src/repository/canonical-json.js';
import { verifyStatement } from '../../src/policy/console-authority.js';
import { fetchStatement } from '../../src/engine/config-follower.js';

function loadTestAuthority(): ConsoleAuthority {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-authority-'));
  try {
    return loadAuthority(dir, true)!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type OpenRepo = (t: TestContext, clock: ManualClock) => Promise<Repository | undefined>;

/** Nodes by address; a call is answered by the handler the addressee registered, in JSON. */
class FakeNetwork {
  readonly handlers = new Map<string, Map<string, RpcHandler>>();
  readonly members = new Map<string, Member>();
  /** Addresses of nodes cut off: they neither answer nor reach anyone. */
  readonly away = new Set<string>();
  /** The console authority every console node of this network holds (a replica the console admitted). */
  readonly authority = loadTestAuthority();

  rpc(id: string, address: string): Rpc {
    const mine = new Map<string, RpcHandler>();
    this.handlers.set(address, mine);
    const call = async (to: string, method: string, body: unknown): Promise<unknown> => {
      const handler = this.handlers.get(to)?.get(method);
      if (!handler || this.away.has(to) || this.away.has(address)) throw new Error(`${to} does not answer ${method}`);
      return JSON.parse(JSON.stringify((await handler(JSON.parse(JSON.stringify(body ?? null)), { nodeId: id, address })) ?? null)) as unknown;
    };
    return {
      handle: (method: string, handler: RpcHandler) => mine.set(method, handler),
      call,
      notify: (to: string, method: string, body: unknown) => void call(to, method, body).catch(() => undefined),
    } as unknown as Rpc;
  }

  cluster(self: string) {
    const listeners: Array<() => void> = [];
    const cutOff = (m: Member) => this.away.has(m.address);
    const others = () => (cutOff(this.members.get(self)!) ? [] : [...this.members.values()].filter((m) => m.id !== self && !cutOff(m)));
    return {
      info: () => ({ nodes: [], mixedVersions: false, versions: [] }) as unknown as ClusterInfo,
      otherActiveMembers: others,
      activeConsole: () => others().filter((m) => m.meta.role === 'console').sort((a, b) => (b.meta.epoch ?? 0) - (a.meta.epoch ?? 0))[0],
      updateMeta: (changes: { role?: string; epoch?: number }) => {
        const m = this.members.get(self)!;
        m.meta = { ...m.meta, ...changes } as Member['meta'];
        this.changed();
      },
      onMembersChanged: (l: () => void) => listeners.push(l),
      listeners,
    };
  }

  private readonly clusters: Array<{ listeners: Array<() => void> }> = [];

  node(id: string, address: string, role: 'console' | 'replica') {
    this.members.set(id, { id, address, incarnation: 0, status: 'alive', meta: { role }, statusSince: 0, clockOffsetMs: 0 } as unknown as Member);
    const cluster = this.cluster(id);
    this.clusters.push(cluster);
    return { rpc: this.rpc(id, address), cluster };
  }

  /** Every node hears of a membership change (a node back, a role or epoch changed). */
  changed(): void {
    for (const c of this.clusters) for (const l of c.listeners) l();
  }
}

const principal = { user: 'ops', role: 'admin' as const };
const POLLING_MS = 100;

async function consoleNode(t: TestContext, net: FakeNetwork, open: OpenRepo, clock: ManualClock, id: string, role: 'console' | 'replica', admitted = true) {
  const repository = (await open(t, clock))!;
  const dataDir = tmpDir(t);
  const { rpc, cluster } = net.node(id, `${id}:1`, role);
  const consoleRole = new ConsoleRole({ nodeId: id, configuredRole: role, dataDir, repository, rpc, clock, log: silentLogger(), pollingDelayMs: POLLING_MS, cluster, authority: admitted ? net.authority : undefined });
  t.after(() => consoleRole.stop());
  return { id, address: `${id}:1`, repository, dataDir, rpc, role: consoleRole };
}

const save = (repo: Repository, section: string, content: unknown, node: string) =>
  repo.getCurrentConfig().then((head) => repo.saveConfigDocument({ section, content, author: 'admin', node, summary: `${section} edited`, epoch: head.epoch }));

const versionsOf = async (repo: Repository) => (await repo.listConfigVersions({ limit: 1000 })).map(({ version, epoch, hash, section }) => ({ version, epoch, hash, section }));

async function allAudit(repo: Repository): Promise<AuditRecord[]> {
  const all: AuditRecord[] = [];
  for (let since = 0; ; ) {
    const page = await repo.listAudit({ sinceId: since, limit: 1000 });
    if (page.length === 0) return all;
    all.push(...page);
    since = page.at(-1)!.id;
  }
}

/** A console, and `ask`: config.export as replica-1 asks it, with its proof; undefined when the repository is skipped. */
async function consoleAndReplica(t: TestContext, open: OpenRepo) {
  const net = new FakeNetwork();
  const clock = new ManualClock(1_800_000_000_000);
  const node = await consoleNode(t, net, open, clock, 'console-1', 'console');
  if (!node.repository) return undefined;
  net.node('replica-1', 'replica-1:1', 'replica');
  const asker = net.rpc('replica-1', 'replica-1:1');
  const ask = (req: ExportRequest) => asker.call<ExportAnswer>(node.address, 'config.export', { ...req, proof: replicaProof(net.authority, 'config.export', 'replica-1', 'console-1', clock.now()) });
  return { c: node, ask };
}

function resyncSuite(name: string, open: OpenRepo): void {
  describe(`configuration between consoles (${name})`, () => {
    it('answers a full copy to an engine that asks for one, even at the console\'s own version and epoch', async (t) => {
      const net = new FakeNetwork();
      const clock = new ManualClock(1_800_000_000_000);
      const c = await consoleNode(t, net, open, clock, 'console-1', 'console');
      if (!c.repository) return;
      await save(c.repository, 'runtime', { lockout: { maxFailures: 5, windowSeconds: 60, lockSeconds: 60 } }, 'console-1');
      const engine = net.rpc('engine-1', 'engine-1:1');
      const upToDate = await engine.call<FetchAnswer>(c.address, 'config.fetch', { version: 1, epoch: 0 });
      assert.equal(upToDate.sections, undefined);
      const full = await engine.call<FetchAnswer>(c.address, 'config.fetch', { version: 1, epoch: 0, full: true });
      assert.deepEqual(Object.keys(full.sections ?? {}), ['runtime']);
      assert.equal(full.sections!.runtime!.hash, (await c.repository.getConfigDocument('runtime'))!.hash);
    });

    it('secrets: engines receive them opened, with the digest of what they receive; the replica receives them sealed, with the key that opens them, itself sealed', async (t) => {
      const net = new FakeNetwork();
      const clock = new ManualClock(1_800_000_000_000);
      const c = await consoleNode(t, net, open, clock, 'console-1', 'console');
      const r = await consoleNode(t, net, open, clock, 'replica-1', 'replica');
      if (!c.repository || !r.repository) return;
      assert.equal(statSync(join(c.dataDir, SECRETS_KEY_FILE)).mode & 0o777, 0o600, 'the console made its key at its first start');
      assert.equal(r.role.secrets.currentId, undefined, 'a replica makes none');
      const config = new ConfigService(c.repository, clock, 'console-1', () => true, c.role.secrets);
      await config.put('apis', { apis: [{ id: 'web', pathPrefix: '/app', login: { issuer: 'https://idp.example', clientId: 'cohort', clientSecret: 'login-s3cret' } }] }, principal);
      const stored = (await c.repository.getConfigDocument('apis'))!;
      assert.ok(!JSON.stringify(stored).includes('login-s3cret'));

      const engine = net.rpc('engine-1', 'engine-1:1');
      const full = await engine.call<FetchAnswer>(c.address, 'config.fetch', { version: 0, epoch: -1, full: true, nonce: 'n-1' });
      const apis = full.sections!.apis!;
      assert.equal((apis.content as { apis: Array<{ login: { clientSecret: string } }> }).apis[0]!.login.clientSecret, 'login-s3cret');
      assert.equal(apis.hash, contentHash(apis.content), 'the digest of what the engine receives');
      assert.ok(verifyStatement(net.authority.publicKey, full.proof, 'config-fetch', { nonce: 'n-1' }, fetchStatement(full)), 'and the console signed it');

      // What a node reading the channel without the authority sees of an export: sealed secrets, a sealed key.
      net.node('eavesdropper', 'eavesdropper:1', 'replica');
      const proof = replicaProof(net.authority, 'config.export', 'eavesdropper', 'console-1', clock.now());
      const exported = await net.rpc('eavesdropper', 'eavesdropper:1').call<ExportAnswer>(c.address, 'config.export', { sinceVersion: 0, sinceAuditId: 0, proof });
      assert.ok(!JSON.stringify(exported).includes('login-s3cret'));
      assert.ok(!JSON.stringify(exported).includes(c.role.secrets.currentKey!.toString('base64url')));
      assert.throws(() => openKeyFromConsole(loadTestAuthority(), proof.nonce, exported.secretsKey, 'console-1'), /cannot open/);

      await c.role.start();
      await r.role.start();
      await waitUntil(async () => {
        clock.advance(POLLING_MS);
        return (await r.repository.getCurrentConfig()).version;
      }, (v) => v === 1, 20_000, 5);
      assert.deepEqual(await r.repository.getConfigDocument('apis'), stored, 'the replica stores the console\'s document as it is');
      assert.equal(r.role.secrets.currentId, c.role.secrets.currentId, 'and took the key that opens it');
      assert.equal(statSync(join(r.dataDir, SECRETS_KEY_FILE)).mode & 0o777, 0o600);
      const onReplica = new ConfigService(r.repository, clock, 'replica-1', () => false, r.role.secrets);
      assert.equal(((await onReplica.get('apis', 'clear')).content as { apis: Array<{ login: { clientSecret: string } }> }).apis[0]!.login.clientSecret, 'login-s3cret');
    });

    it('an export says `diverged` when the asker\'s newest document or audit record is not the console\'s', async (t) => {
      const exporter = await consoleAndReplica(t, open);
      if (!exporter) return;
      const { c, ask } = exporter;
      const doc = await save(c.repository, 'runtime', {}, 'console-1');
      const [audit] = await c.repository.listAudit({ limit: 1 });
      const same = await ask({ sinceVersion: 1, sinceAuditId: audit!.id, sinceDocument: { epoch: doc.epoch, hash: doc.hash }, sinceAudit: audit });
      assert.equal(same.diverged, undefined);
      assert.equal((await ask({ sinceVersion: 1, sinceAuditId: 0, sinceDocument: { epoch: doc.epoch, hash: 'f'.repeat(64) } })).diverged, true, 'another hash');
      assert.equal((await ask({ sinceVersion: 1, sinceAuditId: 0, sinceDocument: { epoch: 7, hash: doc.hash } })).diverged, true, 'another epoch');
      assert.equal((await ask({ sinceVersion: 2, sinceAuditId: 0, sinceDocument: { epoch: 0, hash: doc.hash } })).diverged, true, 'a version the console lacks');
      assert.equal((await ask({ sinceVersion: 0, sinceAuditId: audit!.id, sinceAudit: { ...audit!, summary: 'other' } })).diverged, true, 'another audit record');
      assert.equal((await ask({ sinceVersion: 0, sinceAuditId: audit!.id + 5, sinceAudit: { ...audit!, id: audit!.id + 5 } })).diverged, true, 'an audit record the console lacks');
    });

    it('an export hands out the save records of the versions it hands out only, though a save commits between its reads of documents and audit', async (t) => {
      const exporter = await consoleAndReplica(t, open);
      if (!exporter) return;
      const { c, ask } = exporter;
      const first = await save(c.repository, 'runtime', {}, 'console-1');
      const [firstRecord] = await c.repository.listAudit({ limit: 1 });
      // The next export's read of documents is followed at once by a save (as an admin's save
      // would land between the two reads).
      const repo = c.repository;
      const readDocuments = repo.listConfigDocuments.bind(repo);
      let raced = false;
      repo.listConfigDocuments = async (after, limit) => {
        const page = await readDocuments(after, limit);
        if (!raced) {
          raced = true;
          await save(repo, 'services', { sessions: { idleTimeoutSeconds: 90 } }, 'console-1');
        }
        return page;
      };
      const since = { sinceVersion: 1, sinceAuditId: firstRecord!.id, sinceDocument: { epoch: first.epoch, hash: first.hash }, sinceAudit: firstRecord! };
      const racing = await ask(since);
      assert.ok(raced);
      assert.deepEqual(racing.documents, [], 'the version saved after the documents were read is not in this answer');
      assert.deepEqual(racing.audit, [], 'so neither is its save record');
      const next = await ask(since);
      assert.deepEqual(next.documents.map((d) => d.version), [2]);
      assert.deepEqual(next.audit.map((r) => [r.action, r.versionAfter]), [['config.save', 2]]);
    });

    it('a node holding the cluster secret but not the console authority gets nothing: no documents, audit, users or tokens, whatever role it claims', async (t) => {
      const net = new FakeNetwork();
      const clock = new ManualClock(1_800_000_000_000);
      const c = await consoleNode(t, net, open, clock, 'console-1', 'console');
      if (!c.repository) return;
      await save(c.repository, 'runtime', {}, 'console-1');
      net.node('rogue', 'rogue:1', 'console'); // claims the console role in its metadata
      const rogue = net.rpc('rogue', 'rogue:1');
      const other = loadTestAuthority();
      const proofs: Array<[string, (method: string) => unknown]> = [
        ['no proof', () => undefined],
        ['a proof signed with another key', (method) => replicaProof(other, method, 'rogue', 'console-1', clock.now())],
        ['a proof made for another node', (method) => replicaProof(net.authority, method, 'replica-1', 'console-1', clock.now())],
        ['a proof made for another method', () => replicaProof(net.authority, 'config.history', 'rogue', 'console-1', clock.now())],
        ['a proof too old', (method) => replicaProof(net.authority, method, 'rogue', 'console-1', clock.now() - 120_000)],
      ];
      for (const [what, proof] of proofs) {
        for (const method of ['config.export', 'config.users', 'config.tokens', 'config.discarded']) {
          await assert.rejects(
            rogue.call(c.address, method, { sinceVersion: 0, sinceAuditId: 0, records: [], proof: proof(method) }),
            (err: Error) => err.message.includes('without the console\'s proof'),
            `${method} with ${what}`,
          );
        }
      }
      // A proof is good once: the same proof again is refused.
      const once = replicaProof(net.authority, 'config.users', 'rogue', 'console-1', clock.now());
      const answer = await rogue.call<{ items: unknown[]; proof: unknown }>(c.address, 'config.users', { proof: once });
      assert.equal(answer.items.length, 0, 'an admitted node gets the users (none here), signed');
      assert.ok(answer.proof);
      await assert.rejects(rogue.call(c.address, 'config.users', { proof: once }), /used before/);
      assert.equal((await c.repository.listAudit({ action: 'config.discarded' })).length, 0, 'nothing was appended');
    });

    it('a re-sync takes the console\'s history only when signed by the console authority: an unsigned, altered or foreign answer to config.history drops nothing', async (t) => {
      const clock = new ManualClock(1_800_000_000_000);
      const other = loadTestAuthority();
      // What a node claiming the console role answers to config.history, given the request.
      const variants: Array<[string, (req: { proof: ReplicaProof }, items: unknown[]) => unknown]> = [
        ['an answer without a signature', (_req, items) => ({ items })],
        ['the answer of a version without signatures (a bare list)', (_req, items) => items],
        ['an answer whose content was changed after signing', (req, items) => ({ items, proof: signAnswer(net.authority, 'config.history', req.proof.nonce, { items: [{ version: 1 }] }) })],
        ['an answer signed over another nonce', (_req, items) => ({ items, proof: signAnswer(net.authority, 'config.history', 'another-nonce', { items }) })],
        ['an answer signed with another key', (req, items) => ({ items, proof: signAnswer(other, 'config.history', req.proof.nonce, { items }) })],
        ['the console\'s own signed answer', (req, items) => ({ items, proof: signAnswer(net.authority, 'config.history', req.proof.nonce, { items }) })],
      ];
      let net = new FakeNetwork();
      for (const [what, answer] of variants) {
        net = new FakeNetwork();
        const r = await consoleNode(t, net, open, clock, 'replica-1', 'replica');
        if (!r.repository) return;
        for (let i = 0; i < 3; i++) await save(r.repository, 'runtime', { defaultRateLimit: { capacity: i + 1, refillPerSecond: 1 } }, 'console-0');
        const held = await versionsOf(r.repository);
        // A console whose history holds none of the replica's versions: the fork point is 0.
        const fake = net.node('console-2', 'console-2:1', 'console');
        net.members.get('console-2')!.meta = { role: 'console', epoch: 1 } as Member['meta'];
        let historyAsked = 0;
        fake.rpc.handle('config.export', (body) => {
          const req = body as { proof: ReplicaProof };
          const content = { epoch: 1, version: 0, documents: [], audit: [], diverged: true };
          return { ...content, proof: signAnswer(net.authority, 'config.export', req.proof.nonce, content) };
        });
        fake.rpc.handle('config.history', (body) => {
          historyAsked++;
          return answer(body as { proof: ReplicaProof }, []);
        });
        fake.rpc.handle('config.discarded', () => 0);
        fake.rpc.handle('config.users', (body) => ({ items: [], proof: signAnswer(net.authority, 'config.users', (body as { proof: ReplicaProof }).proof.nonce, { items: [] }) }));
        fake.rpc.handle('config.tokens', (body) => ({ items: [], proof: signAnswer(net.authority, 'config.tokens', (body as { proof: ReplicaProof }).proof.nonce, { items: [] }) }));
        await r.role.start();
        const droppedFiles = () => readdirSync(r.dataDir).filter((f) => f.startsWith(DROPPED_CONFIG_PREFIX));
        if (what.startsWith('the console')) {
          await waitUntil(async () => (clock.advance(POLLING_MS), versionsOf(r.repository)), (v) => v.length === 0, 5000, 5);
          assert.equal(droppedFiles().length, 1, 'the signed history is followed: the versions after the fork point are set aside and dropped');
        } else {
          // Several re-syncs tried (each asks for the history at least once), time enough for any to finish.
          await waitUntil(async () => (clock.advance(POLLING_MS), historyAsked), (n) => n >= 4, 5000, 5);
          await new Promise((resolve) => setTimeout(resolve, 50));
          assert.deepEqual(await versionsOf(r.repository), held, `${what}: nothing dropped`);
          assert.deepEqual(droppedFiles(), [], `${what}: nothing set aside`);
        }
        r.role.stop();
      }
    });

    it('a replica that was not admitted pulls nothing and refuses to be promoted', async (t) => {
      const net = new FakeNetwork();
      const clock = new ManualClock(1_800_000_000_000);
      const c = await consoleNode(t, net, open, clock, 'console-1', 'console');
      const r = await consoleNode(t, net, open, clock, 'replica-1', 'replica', false);
      if (!c.repository || !r.repository) return;
      await save(c.repository, 'runtime', {}, 'console-1');
      await c.role.start();
      await r.role.start();
      clock.advance(POLLING_MS * 3);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await r.repository.getCurrentConfig()).version, 0);
      assert.deepEqual(await r.repository.listAudit(), []);
      net.away.add(c.address);
      await assert.rejects(r.role.promote(true, principal), (err: Error & { code?: string }) => err.code === 'CONSOLE_PROMOTE_REFUSED' && /not admitted/.test(err.message));
    });

    it('a console demoted after a promotion drops what it saved after the fork point and takes the new console\'s history: both end identical', async (t) => {
      const net = new FakeNetwork();
      const clock = new ManualClock(1_800_000_000_000);
      const one = await consoleNode(t, net, open, clock, 'console-1', 'console');
      const two = await consoleNode(t, net, open, clock, 'console-2', 'replica');
      if (!one.repository || !two.repository) return;
      await one.role.start();
      await two.role.start();
      const pulls = async () => {
        clock.advance(POLLING_MS);
        return [await versionsOf(one.repository), await versionsOf(two.repository)];
      };
      for (let i = 0; i < 30; i++) await save(one.repository, 'runtime', { defaultRateLimit: { capacity: i + 1, refillPerSecond: 1 } }, 'console-1');
      await waitUntil(pulls, ([a, b]) => JSON.stringify(a) === JSON.stringify(b), 20_000, 5);

      // The replica is away; the console saves 250 versions it never pulls (more than a page
      // of history), then is away itself, and the replica is promoted. (A pull in flight when
      // the replica went away may still have taken the first few.)
      net.away.add(two.address);
      for (let i = 0; i < 250; i++) await save(one.repository, i % 2 ? 'services' : 'apis', i % 2 ? { sessions: { idleTimeoutSeconds: 60 + i } } : { apis: [{ id: `a${i}`, pathPrefix: '/x' }] }, 'console-1');
      net.away.delete(two.address);
      net.away.add(one.address);
      assert.deepEqual(await two.role.promote(false, principal), { epoch: 1 });
      const fork = (await two.repository.getCurrentConfig()).version;
      assert.ok(fork >= 30 && fork < 280, `fork point ${fork}`);
      const droppedAudit = (await allAudit(one.repository)).filter((r) => r.versionAfter! > fork);
      assert.equal(droppedAudit.length, 280 - fork);
      for (let i = 0; i < 5; i++) await save(two.repository, 'runtime', { defaultRateLimit: { capacity: 100 + i, refillPerSecond: 1 } }, 'console-2');

      // The old console comes back: it sees the higher epoch, is demoted and re-syncs.
      net.away.delete(one.address);
      net.changed();
      // It steps down once the new console proved the authority (one challenge).
      await waitUntil(async () => one.role.current, (state) => state === 'demoted', 5000, 5);
      const { value: [ours, theirs] } = await waitUntil(pulls, ([a, b]) => JSON.stringify(a) === JSON.stringify(b), 20_000, 5);
      assert.equal(ours!.length, fork + 5);
      assert.ok(ours!.every((v) => (v.version <= fork ? v.epoch === 0 : v.epoch === 1)), 'the versions after the fork are the new console\'s');
      assert.deepEqual(await one.repository.getCurrentConfig(), await two.repository.getCurrentConfig());
      await waitUntil(async () => {
        clock.advance(POLLING_MS);
        return JSON.stringify(await allAudit(one.repository)) === JSON.stringify(await allAudit(two.repository));
      }, (same) => same, 20_000, 5);

      // The audit records it dropped are kept by the new console, marked, once each.
      const discarded = await two.repository.listAudit({ action: 'config.discarded', limit: 1000 });
      assert.equal(discarded.length, 280 - fork);
      assert.ok(discarded.every((r) => r.node === 'console-1' && /^config\.save dropped when console-1 re-synced its history/.test(r.summary)));
      // The versions it dropped, with their content, are in its data directory.
      const [file] = readdirSync(one.dataDir).filter((f) => f.startsWith(DROPPED_CONFIG_PREFIX));
      const kept = JSON.parse(readFileSync(join(one.dataDir, file!), 'utf8')) as { forkVersion: number; documents: Array<{ version: number; epoch: number }> };
      assert.equal(kept.forkVersion, fork);
      assert.deepEqual(kept.documents.map((d) => d.version), Array.from({ length: 280 - fork }, (_, i) => fork + 1 + i));
      assert.ok(kept.documents.every((d) => d.epoch === 0));

      // Further pulls change nothing, and the records handed over again are not duplicated.
      for (let i = 0; i < 5; i++) clock.advance(POLLING_MS);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await versionsOf(one.repository), theirs);
      assert.equal(await one.rpc.call<number>(two.address, 'config.discarded', { records: droppedAudit, proof: replicaProof(net.authority, 'config.discarded', 'console-1', 'console-2', clock.now()) }), 0);
      assert.equal((await two.repository.listAudit({ action: 'config.discarded', limit: 1000 })).length, 280 - fork);
    });
  });
}

resyncSuite('SQLite', sqliteRepository);
resyncSuite('PostgreSQL', postgresRepository);
