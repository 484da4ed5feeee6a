/**
 * The contract every Repository implementation passes. Each implementation's test file calls
 * repositoryContract() with a factory for a fresh, migrated, empty store per test.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { ManualClock, type Clock } from '../../src/core/clock.js';
import { LATEST_SCHEMA_VERSION } from '../../src/repository/migrations.js';
import type { Repository, SaveConfigInput } from '../../src/repository/repository.js';

export interface ContractStore {
  /** Opened with openRepository (so migrated) on a store of its own. */
  repo: Repository;
  /** Opens another Repository on the same store, as another process would. */
  reopen: () => Promise<Repository>;
  /** Writes a schema_migrations row directly, as a newer Cohort's migrate would have. */
  recordMigration: (version: number) => Promise<void>;
  /** Closes every repository opened on the store and deletes it. */
  cleanup: () => Promise<void>;
}

/** Returns undefined when the backing service is unavailable and `t` was skipped. */
export type OpenStore = (t: TestContext, opts: { clock: Clock }) => Promise<ContractStore | undefined>;

const SECTION_A = 'authentication';
const SECTION_B = 'sessions';

function save(repo: Repository, section: string, content: unknown, extra: Partial<SaveConfigInput> = {}) {
  const input = { section, content, author: 'alice', node: 'console-1', summary: `edit ${section}` };
  return repo.saveConfigDocument({ ...input, ...extra });
}

/** The audit record of a save, without its id. */
function saveAudit(
  at: number,
  user: string,
  node: string,
  section: string,
  versionBefore: number | null,
  versionAfter: number,
  summary: string,
) {
  return { at, user, node, action: 'config.save', section, versionBefore, versionAfter, summary };
}

function code(expected: string): (err: unknown) => boolean {
  return (err) => {
    assert.equal((err as { code?: unknown }).code, expected, `expected ${expected}, got ${String(err)}`);
    return true;
  };
}

export function repositoryContract(name: string, open: OpenStore): void {
  describe(name, () => {
    /** A fresh store and clock for one test, cleaned up after it; undefined when skipped. */
    async function setup(t: TestContext): Promise<(ContractStore & { clock: ManualClock }) | undefined> {
      const clock = new ManualClock();
      const store = await open(t, { clock });
      if (!store) return undefined;
      t.after(() => store.cleanup());
      return { ...store, clock };
    }

    it('an empty repository is at version 0, epoch 0, with no sections', async (t) => {
      const store = await setup(t);
      if (!store) return;
      assert.deepEqual(await store.repo.getCurrentConfig(), { version: 0, epoch: 0, sections: {} });
      assert.equal(await store.repo.getConfigDocument(SECTION_A), undefined);
      assert.deepEqual(await store.repo.listConfigVersions(), []);
      assert.deepEqual(await store.repo.listAudit(), []);
    });

    it('saves take consecutive versions shared by all sections', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo, clock } = store;
      const first = await save(repo, SECTION_A, { a: 1 });
      clock.advance(10);
      const second = await save(repo, SECTION_B, { b: 1 }, { author: 'bob', node: 'console-2' });
      clock.advance(10);
      const third = await save(repo, SECTION_A, { a: 2 });
      assert.deepEqual([first.version, second.version, third.version], [1, 2, 3]);
      assert.deepEqual(second, {
        version: 2,
        section: SECTION_B,
        epoch: 0,
        content: { b: 1 },
        hash: second.hash,
        createdAt: clock.now() - 10,
        author: 'bob',
        node: 'console-2',
      });
      assert.deepEqual(await repo.getCurrentConfig(), {
        version: 3,
        epoch: 0,
        sections: { [SECTION_A]: third, [SECTION_B]: second },
      });
    });

    it('getConfigDocument returns the latest or an exact version of a section', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const v1 = await save(repo, SECTION_A, { n: 1 });
      const v2 = await save(repo, SECTION_B, { n: 2 });
      const v3 = await save(repo, SECTION_A, { n: 3 });
      assert.deepEqual(await repo.getConfigDocument(SECTION_A), v3);
      assert.deepEqual(await repo.getConfigDocument(SECTION_A, 1), v1);
      assert.deepEqual(await repo.getConfigDocument(SECTION_B, 2), v2);
      assert.equal(await repo.getConfigDocument(SECTION_A, 2), undefined, 'version 2 belongs to another section');
      assert.equal(await repo.getConfigDocument(SECTION_A, 99), undefined);
      assert.equal(await repo.getConfigDocument('no-such-section'), undefined);
    });

    it('content round-trips exactly: nesting, key order, unicode, escapes', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const content = {
        zeta: 'last key first',
        nested: { deep: [1, 'two', { three: 3.5, nil: null }], empty: {}, emptyList: [] },
        text: 'é 中文 🚀 "quoted" \\ back\nslash\ttab \u0000 nul \u2028',
        flag: false,
        big: Number.MAX_SAFE_INTEGER,
        negative: -0.000125,
      };
      const saved = await save(store.repo, SECTION_A, content);
      assert.deepEqual(saved.content, content);
      const read = await store.repo.getConfigDocument(SECTION_A);
      assert.deepEqual(read?.content, content);
      assert.deepEqual(Object.keys(read?.content as object), Object.keys(content));
      for (const other of [[1, 2, 3], 'just a string', 42, null]) {
        const doc = await save(store.repo, SECTION_B, other);
        assert.deepEqual((await store.repo.getConfigDocument(SECTION_B, doc.version))?.content, other);
      }
    });

    it('the hash is the same for equal content in any key order and differs otherwise', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const a = await save(repo, SECTION_A, { x: 1, y: { p: [1, 2], q: 'z' } });
      const b = await save(repo, SECTION_B, { y: { q: 'z', p: [1, 2] }, x: 1 });
      const c = await save(repo, SECTION_A, { x: 1, y: { p: [2, 1], q: 'z' } });
      const d = await save(repo, SECTION_A, { x: 2, y: { p: [1, 2], q: 'z' } });
      assert.match(a.hash, /^[0-9a-f]{64}$/);
      assert.equal(a.hash, b.hash);
      assert.notEqual(a.hash, c.hash, 'array order matters');
      assert.notEqual(a.hash, d.hash);
    });

    it('a save expecting an older version is REPO_VERSION_CONFLICT and stores nothing', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      await save(repo, SECTION_A, { n: 1 });
      await assert.rejects(save(repo, SECTION_A, { n: 2 }, { expectedVersion: 0 }), code('REPO_VERSION_CONFLICT'));
      await assert.rejects(save(repo, SECTION_B, { n: 2 }, { expectedVersion: 2 }), code('REPO_VERSION_CONFLICT'));
      assert.equal((await repo.getCurrentConfig()).version, 1);
      assert.equal((await repo.listConfigVersions()).length, 1);
      assert.equal((await repo.listAudit()).length, 1);
      assert.equal((await save(repo, SECTION_A, { n: 2 }, { expectedVersion: 1 })).version, 2);
    });

    it('of concurrent saves expecting the same version, exactly one succeeds', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => save(store.repo, SECTION_A, { i }, { expectedVersion: 0 })),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') code('REPO_VERSION_CONFLICT')(r.reason);
      assert.equal((await store.repo.getCurrentConfig()).version, 1);
      assert.equal((await store.repo.listAudit()).length, 1);
    });

    it('a save with an epoch below the head epoch is REPO_EPOCH_STALE and stores nothing', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      await repo.raiseEpoch(3, 'ops', 'replica-1', 'promote replica');
      await assert.rejects(save(repo, SECTION_A, { n: 1 }, { epoch: 2 }), code('REPO_EPOCH_STALE'));
      assert.deepEqual(await repo.getCurrentConfig(), { version: 0, epoch: 3, sections: {} });
      assert.deepEqual(
        (await repo.listAudit()).map((r) => r.action),
        ['config.epoch'],
      );
      assert.equal((await save(repo, SECTION_A, { n: 1 }, { epoch: 3 })).epoch, 3);
      assert.equal((await save(repo, SECTION_A, { n: 2 }, { epoch: 5 })).epoch, 5);
      assert.equal((await repo.getCurrentConfig()).epoch, 5);
    });

    it('a save without an epoch carries the head epoch forward', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      assert.equal((await save(repo, SECTION_A, { n: 1 })).epoch, 0);
      assert.equal((await save(repo, SECTION_A, { n: 2 }, { epoch: 2 })).epoch, 2);
      const carried = await save(repo, SECTION_B, { n: 3 });
      assert.equal(carried.epoch, 2);
      assert.equal((await repo.getConfigDocument(SECTION_B))?.epoch, 2);
      assert.equal((await repo.getCurrentConfig()).epoch, 2);
    });

    it('raiseEpoch never lowers the epoch and audits every call', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo, clock } = store;
      await save(repo, SECTION_A, { n: 1 });
      assert.equal(await repo.raiseEpoch(4, 'ops', 'replica-1', 'promote'), 4);
      assert.equal(await repo.raiseEpoch(2, 'ops', 'replica-1', 'promote again'), 4);
      assert.equal((await repo.getCurrentConfig()).epoch, 4);
      const [latest, earlier] = await repo.listAudit({ limit: 2 });
      for (const [rec, summary] of [
        [latest, 'promote again'],
        [earlier, 'promote'],
      ] as const) {
        assert.deepEqual({ ...rec, id: 0 }, {
          id: 0,
          at: clock.now(),
          user: 'ops',
          node: 'replica-1',
          action: 'config.epoch',
          section: null,
          versionBefore: 1,
          versionAfter: 1,
          summary,
        });
      }
      await assert.rejects(repo.raiseEpoch(-1, 'ops', 'replica-1', 'bad'), RangeError);
    });

    it('every save is audited with the section version before and after', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo, clock } = store;
      await save(repo, SECTION_A, { n: 1 }, { summary: 'first A' });
      clock.advance(5);
      await save(repo, SECTION_B, { n: 2 }, { summary: 'first B', author: 'bob', node: 'console-2' });
      clock.advance(5);
      await save(repo, SECTION_A, { n: 3 }, { summary: 'second A' });
      const audit = await repo.listAudit();
      assert.deepEqual(
        audit.map(({ id: _id, ...rest }) => rest),
        [
          saveAudit(clock.now(), 'alice', 'console-1', SECTION_A, 1, 3, 'second A'),
          saveAudit(clock.now() - 5, 'bob', 'console-2', SECTION_B, null, 2, 'first B'),
          saveAudit(clock.now() - 10, 'alice', 'console-1', SECTION_A, null, 1, 'first A'),
        ],
      );
    });

    it('appendAudit stores a record, taking the time from the clock unless given', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo, clock } = store;
      const plain = await repo.appendAudit({ user: 'alice', node: 'console-1', action: 'apikey.create', summary: 'key k1' });
      assert.deepEqual({ ...plain, id: 0 }, {
        id: 0,
        at: clock.now(),
        user: 'alice',
        node: 'console-1',
        action: 'apikey.create',
        section: null,
        versionBefore: null,
        versionAfter: null,
        summary: 'key k1',
      });
      const full = await repo.appendAudit({
        at: 1234,
        user: 'replica',
        node: 'replica-1',
        action: 'config.save',
        section: SECTION_A,
        versionBefore: 6,
        versionAfter: 7,
        summary: 'pulled',
      });
      assert.ok(full.id > plain.id);
      assert.deepEqual(await repo.listAudit(), [full, plain]);
    });

    it('listAudit pages newest first by limit and beforeId, and oldest first after sinceId', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const ids: number[] = [];
      for (let i = 0; i < 105; i++) {
        ids.push((await repo.appendAudit({ user: 'u', node: 'n', action: 'test', summary: `#${i}` })).id);
      }
      const newestFirst = [...ids].reverse();
      assert.deepEqual((await repo.listAudit()).map((r) => r.id), newestFirst.slice(0, 100), 'default limit 100');
      assert.deepEqual((await repo.listAudit({ limit: 5000 })).map((r) => r.id), newestFirst, 'limit capped at 1000');
      assert.deepEqual((await repo.listAudit({ limit: 3 })).map((r) => r.id), newestFirst.slice(0, 3));
      assert.deepEqual(
        (await repo.listAudit({ limit: 3, beforeId: ids[50] })).map((r) => r.id),
        [ids[49], ids[48], ids[47]],
      );
      assert.deepEqual(
        (await repo.listAudit({ sinceId: ids[100] })).map((r) => r.id),
        ids.slice(101),
        'sinceId: oldest first, strictly after',
      );
      assert.deepEqual((await repo.listAudit({ sinceId: ids[10], limit: 2 })).map((r) => r.id), [ids[11], ids[12]]);
      assert.deepEqual(await repo.listAudit({ sinceId: ids[104] }), []);
    });

    it('listConfigVersions lists newest first without content, by section, limit and beforeVersion', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const docs = [];
      for (let i = 0; i < 6; i++) docs.push(await save(repo, i % 2 === 0 ? SECTION_A : SECTION_B, { i }));
      const summaries = docs.map(({ content: _content, ...rest }) => rest).reverse();
      assert.deepEqual(await repo.listConfigVersions(), summaries);
      assert.deepEqual(
        (await repo.listConfigVersions({ section: SECTION_A })).map((s) => s.version),
        [5, 3, 1],
      );
      assert.deepEqual(
        (await repo.listConfigVersions({ limit: 2 })).map((s) => s.version),
        [6, 5],
      );
      assert.deepEqual(
        (await repo.listConfigVersions({ section: SECTION_B, beforeVersion: 6, limit: 1 })).map((s) => s.version),
        [4],
      );
      assert.deepEqual(
        (await repo.listConfigDocuments(2, 3)).map((d) => [d.version, d.content]),
        [[3, { i: 2 }], [4, { i: 3 }], [5, { i: 4 }]],
        'documents after a version: oldest first, strictly after, with content',
      );
    });

    it('admin users: created once (audited), read back, listed; a taken name stores nothing', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo, clock } = store;
      const alice = { name: 'alice', passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA', role: 'admin' as const, createdAt: clock.now() };
      assert.equal(await repo.createAdminUser(alice, 'first-start', 'console-1'), true);
      assert.equal(await repo.createAdminUser({ ...alice, role: 'auditor', passwordHash: 'other' }, 'x', 'console-1'), false);
      assert.deepEqual(await repo.getAdminUser('alice'), alice);
      assert.equal(await repo.getAdminUser('bob'), undefined);
      await repo.createAdminUser({ ...alice, name: 'audrey', role: 'auditor' }, 'alice', 'console-1');
      assert.deepEqual((await repo.listAdminUsers()).map((u) => [u.name, u.role]), [['alice', 'admin'], ['audrey', 'auditor']]);
      assert.deepEqual((await repo.listAudit()).map((r) => [r.action, r.user]), [['user.create', 'alice'], ['user.create', 'first-start']]);
    });

    it('admin tokens: stored by hash, revoked once, listed until they expire, copied with revocations kept, expired ones dropped', async (t) => {
      const source = await setup(t);
      const copy = await setup(t);
      if (!source || !copy) return;
      const now = source.clock.now();
      const live = { hash: 'a'.repeat(64), user: 'alice', role: 'admin' as const, createdAt: now, expiresAt: now + 60_000, revokedAt: null };
      const old = { ...live, hash: 'b'.repeat(64), expiresAt: now - 1 };
      await source.repo.saveAdminToken(live);
      await source.repo.saveAdminToken(old);
      assert.deepEqual(await source.repo.getAdminToken(live.hash), live);
      assert.equal(await source.repo.getAdminToken('c'.repeat(64)), undefined);
      assert.deepEqual(await source.repo.listAdminTokens(now), [live], 'expired tokens are not listed');
      // The copy learns the token, then its revocation; a revocation is never undone by a copy.
      assert.equal(await copy.repo.importAdminTokens(await source.repo.listAdminTokens(now)), 1);
      assert.deepEqual(await copy.repo.getAdminToken(live.hash), live);
      assert.equal(await source.repo.revokeAdminToken(live.hash, now + 5), true);
      assert.equal(await source.repo.revokeAdminToken(live.hash, now + 6), false, 'revoked once');
      await copy.repo.importAdminTokens(await source.repo.listAdminTokens(now));
      assert.equal((await copy.repo.getAdminToken(live.hash))!.revokedAt, now + 5);
      await copy.repo.importAdminTokens([live]);
      assert.equal((await copy.repo.getAdminToken(live.hash))!.revokedAt, now + 5, 'an older copy does not bring a revoked token back');
      assert.equal(await source.repo.deleteExpiredAdminTokens(now), 1);
      assert.equal(await source.repo.getAdminToken(old.hash), undefined);
      assert.deepEqual(await source.repo.listAudit(), [], 'tokens are not audited one by one');
    });

    it('a replica imports documents and audit records under their own versions and ids, once', async (t) => {
      const source = await setup(t);
      const copy = await setup(t);
      if (!source || !copy) return;
      const a1 = await save(source.repo, SECTION_A, { a: 1 });
      const b2 = await save(source.repo, SECTION_B, { b: 2 });
      await source.repo.raiseEpoch(3, 'op', 'console-1', 'promoted');
      const audit = await source.repo.listAudit({ sinceId: 0 });
      assert.equal(await copy.repo.importConfigDocuments([a1, b2], 3), 2);
      assert.equal(await copy.repo.importConfigDocuments([b2], 3), 0, 'already held');
      assert.equal(await copy.repo.importAudit(audit), audit.length);
      assert.equal(await copy.repo.importAudit(audit), 0);
      const current = await copy.repo.getCurrentConfig();
      assert.deepEqual([current.version, current.epoch], [2, 3]);
      assert.deepEqual(current.sections[SECTION_B], b2);
      assert.deepEqual(await copy.repo.listAudit({ sinceId: 0 }), audit);
      // The same version from a console of a higher epoch replaces it (a demoted console takes
      // the promoted one's history); from a lower epoch it does not.
      await copy.repo.importConfigDocuments([{ ...b2, content: { b: 'newer' }, epoch: 4 }], 4);
      await copy.repo.importConfigDocuments([{ ...b2, content: { b: 'older' }, epoch: 1 }], 1);
      assert.deepEqual((await copy.repo.getConfigDocument(SECTION_B))!.content, { b: 'newer' });
      assert.equal((await copy.repo.getCurrentConfig()).epoch, 4);
      // Admin users are copied (and updated) without audit records of their own.
      const user = { name: 'op', passwordHash: 'h1', role: 'admin' as const, createdAt: 1 };
      await copy.repo.importAdminUsers([user]);
      await copy.repo.importAdminUsers([{ ...user, passwordHash: 'h2' }]);
      assert.deepEqual(await copy.repo.listAdminUsers(), [{ ...user, passwordHash: 'h2' }]);
      assert.deepEqual(await copy.repo.listAudit({ sinceId: 0 }), audit);
      // After a promotion the copy carries on from there: versions and audit ids follow.
      const next = await save(copy.repo, SECTION_A, { a: 3 });
      assert.equal(next.version, 3);
      const [latest] = await copy.repo.listAudit({ limit: 1 });
      assert.ok(latest!.id > Math.max(...audit.map((r) => r.id)));
    });

    it('a replica whose history forked re-syncs from the fork point: truncateHistory drops what came after, and the console\'s history imports from there', async (t) => {
      const console2 = await setup(t);
      const console1 = await setup(t);
      if (!console2 || !console1) return;
      // Both hold versions 1-2 and audit records 1-2 (console-2 was console-1's replica).
      const docs = [await save(console1.repo, SECTION_A, { a: 1 }), await save(console1.repo, SECTION_B, { b: 2 })];
      await console2.repo.importConfigDocuments(docs, 0);
      await console2.repo.importAudit(await console1.repo.listAudit({ sinceId: 0 }));
      // Then each wrote on its own: console-1 three versions at epoch 0, console-2 (promoted)
      // one at epoch 1.
      for (const n of [3, 4, 5]) await save(console1.repo, SECTION_A, { a: n }, { node: 'console-1' });
      await console2.repo.raiseEpoch(1, 'op', 'console-2', 'promoted');
      await save(console2.repo, SECTION_B, { b: 3 }, { node: 'console-2' });
      assert.deepEqual(await console1.repo.truncateHistory(2, 2), { documents: 3, audit: 3 });
      assert.deepEqual((await console1.repo.listConfigVersions()).map((v) => v.version), [2, 1]);
      assert.deepEqual((await console1.repo.listAudit()).map((r) => r.id), [2, 1]);
      const afterTruncate = await console1.repo.getCurrentConfig();
      assert.deepEqual([afterTruncate.version, afterTruncate.epoch], [2, 0], 'the head moves back; the epoch stays');
      assert.deepEqual(afterTruncate.sections[SECTION_A], docs[0]);
      assert.deepEqual(await console1.repo.truncateHistory(2, 2), { documents: 0, audit: 0 }, 'nothing more to drop');
      // Imported from the fork point, the histories are identical.
      await console1.repo.importConfigDocuments(await console2.repo.listConfigDocuments(2, 100), 1);
      await console1.repo.importAudit(await console2.repo.listAudit({ sinceId: 2 }));
      assert.deepEqual(await console1.repo.listConfigVersions(), await console2.repo.listConfigVersions());
      assert.deepEqual(await console1.repo.getCurrentConfig(), await console2.repo.getCurrentConfig());
      assert.deepEqual(await console1.repo.listAudit(), await console2.repo.listAudit());
      // Should it be promoted again, its audit ids follow on from the records it holds.
      const [last] = await console1.repo.listAudit({ limit: 1 });
      await console1.repo.raiseEpoch(2, 'op', 'console-1', 'promoted again');
      assert.equal((await console1.repo.listAudit({ limit: 1 }))[0]!.id, last!.id + 1);
      await assert.rejects(console1.repo.truncateHistory(-1, 0), RangeError);
    });

    it('listAudit filters by action', async (t) => {
      const store = await setup(t);
      if (!store) return;
      await save(store.repo, SECTION_A, { a: 1 });
      await store.repo.raiseEpoch(1, 'op', 'replica-1', 'promoted');
      await save(store.repo, SECTION_A, { a: 2 });
      assert.deepEqual((await store.repo.listAudit({ action: 'config.save' })).map((r) => r.versionAfter), [2, 1]);
      assert.deepEqual((await store.repo.listAudit({ action: 'config.epoch' })).map((r) => r.summary), ['promoted']);
      assert.deepEqual(await store.repo.listAudit({ action: 'config.discarded' }), []);
    });

    it('scheduler: a due job is claimed once among concurrent claimers, with a fencing token that a completion must carry', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const plan = () => ({ fire: true, nextFireAt: 2000, concurrent: false });
      await repo.schedulerSyncJobs([{ scheduleId: 'job-a', definitionHash: 'h1', firstFireAt: 1000 }]);
      assert.deepEqual(await repo.schedulerClaimDue('n1', 999, 10, plan), [], 'not due yet');
      const claims = await Promise.all(['n1', 'n2', 'n3'].map((n) => repo.schedulerClaimDue(n, 1000, 10, plan)));
      const all = claims.flat();
      assert.equal(all.length, 1, 'exactly one node claimed the fire time');
      const claim = all[0]!;
      assert.equal(claim.fireAt, 1000);
      const [job] = await repo.schedulerJobs();
      assert.equal(job!.state, 'claimed');
      assert.equal(job!.nextFireAt, 2000);
      assert.equal(await repo.schedulerStart('job-a', claim.token + 1, 1001), false, 'a wrong token does not start it');
      assert.equal(await repo.schedulerStart('job-a', claim.token, 1001), true);
      assert.deepEqual(await repo.schedulerClaimDue('n2', 5000, 10, plan), [], 'a running non-concurrent job is not claimed again');

      // The node stops checking in: its job is taken back, then claimed anew with a new token.
      const taken = await repo.schedulerRecover(['n1', 'n9'], (j) => j.fireAt!);
      assert.deepEqual(taken.map((j) => [j.scheduleId, j.state, j.token]), [['job-a', 'running', claim.token]]);
      const [again] = await repo.schedulerClaimDue('n2', 5000, 10, plan);
      assert.ok(again!.token > claim.token);
      {
        const base = { scheduleId: 'job-a', fireAt: 1000, startedAt: 1001, endedAt: 1500, outcome: 'succeeded' as const, error: null };
        assert.equal(await repo.schedulerComplete({ ...base, node: 'n1', token: claim.token }, 10, false), false, 'the stale token is rejected');
        assert.equal((await repo.schedulerJobs())[0]!.token, again!.token, 'the new claim is untouched');
        assert.equal(await repo.schedulerComplete({ ...base, node: 'n2', token: again!.token }, 10, false), true);
        const runs = await repo.schedulerRuns('job-a', 10);
        assert.deepEqual(runs.map((r) => [r.node, r.outcome]), [['n2', 'succeeded'], ['n1', 'rejected']]);
        assert.match(runs[1]!.error!, /stale fencing token/);
      }
      assert.equal((await repo.schedulerJobs())[0]!.state, 'idle');
    });

    it('scheduler: check-ins, job sync and run history retention', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      await repo.schedulerCheckIn('n1', 100, 5000);
      await repo.schedulerCheckIn('n1', 200, 5000);
      await repo.schedulerCheckIn('n2', 150, 5500);
      assert.deepEqual(await repo.schedulerCheckIns(), [{ node: 'n1', at: 200, periodMs: 5000 }, { node: 'n2', at: 150, periodMs: 5500 }]);
      await repo.schedulerSyncJobs([{ scheduleId: 'a', definitionHash: 'h1', firstFireAt: 10 }, { scheduleId: 'b', definitionHash: 'h1', firstFireAt: 20 }]);
      await repo.schedulerSyncJobs([{ scheduleId: 'a', definitionHash: 'h1', firstFireAt: 99 }, { scheduleId: 'b', definitionHash: 'h2', firstFireAt: 30 }]);
      assert.deepEqual((await repo.schedulerJobs()).map((j) => [j.scheduleId, j.nextFireAt]), [['a', 10], ['b', 30]], 'unchanged kept, changed reset');
      await repo.schedulerSyncJobs([{ scheduleId: 'b', definitionHash: 'h2', firstFireAt: 30 }]);
      assert.deepEqual((await repo.schedulerJobs()).map((j) => j.scheduleId), ['b'], 'a deleted schedule loses its job');
      // Concurrent schedules are not held by their claim, and keep only the newest runs.
      const plan = () => ({ fire: true, nextFireAt: 40, concurrent: true });
      const [c] = await repo.schedulerClaimDue('n1', 30, 10, plan);
      assert.equal((await repo.schedulerJobs())[0]!.state, 'idle');
      for (let i = 0; i < 5; i++) await repo.schedulerComplete({ scheduleId: 'b', fireAt: 30 + i, node: 'n1', token: c!.token, startedAt: 30, endedAt: 31, outcome: 'failed', error: `e${i}` }, 3, true);
      assert.deepEqual((await repo.schedulerRuns('b', 10)).map((r) => r.error), ['e4', 'e3', 'e2']);
    });

    it('concurrent saves get distinct consecutive versions, each audited', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const docs = await Promise.all(
        Array.from({ length: 20 }, (_, i) => save(repo, `section-${i % 4}`, { i })),
      );
      assert.deepEqual(
        docs.map((d) => d.version).sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      assert.equal((await repo.getCurrentConfig()).version, 20);
      const audit = await repo.listAudit();
      assert.equal(audit.length, 20);
      // Per section, each save's "before" is the previous save of that section.
      for (const rec of audit) {
        const earlier = audit.filter((r) => r.section === rec.section && r.versionAfter! < rec.versionAfter!);
        const expected = earlier.length === 0 ? null : Math.max(...earlier.map((r) => r.versionAfter!));
        assert.equal(rec.versionBefore, expected);
      }
    });

    it('content that is not JSON is refused and stores nothing', async (t) => {
      const store = await setup(t);
      if (!store) return;
      await assert.rejects(save(store.repo, SECTION_A, undefined), TypeError);
      await assert.rejects(save(store.repo, SECTION_A, { n: 1n }), TypeError);
      assert.equal((await store.repo.getCurrentConfig()).version, 0);
      assert.deepEqual(await store.repo.listAudit(), []);
    });

    it('migrate is a no-op on an up-to-date store, also when called concurrently', async (t) => {
      const store = await setup(t);
      if (!store) return;
      const { repo } = store;
      const doc = await save(repo, SECTION_A, { n: 1 });
      await repo.migrate();
      await Promise.all([repo.migrate(), repo.migrate(), repo.migrate()]);
      assert.deepEqual(await repo.getConfigDocument(SECTION_A), doc);
      assert.equal((await repo.listAudit()).length, 1);
    });

    it('migrate refuses a schema newer than this code with REPO_SCHEMA_TOO_NEW', async (t) => {
      const store = await setup(t);
      if (!store) return;
      await store.recordMigration(LATEST_SCHEMA_VERSION + 1);
      await assert.rejects(store.repo.migrate(), code('REPO_SCHEMA_TOO_NEW'));
      await assert.rejects(store.reopen(), code('REPO_SCHEMA_TOO_NEW'));
    });

    it('a closed repository answers every read and write with REPO_UNAVAILABLE (a request in flight at shutdown gets a coded error)', async (t) => {
      const store = await setup(t);
      if (!store) return;
      await save(store.repo, SECTION_A, { n: 1 });
      await store.repo.close();
      const r = store.repo;
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['getCurrentConfig', () => r.getCurrentConfig()],
        ['getConfigDocument', () => r.getConfigDocument(SECTION_A)],
        ['listConfigVersions', () => r.listConfigVersions()],
        ['listConfigDocuments', () => r.listConfigDocuments(0, 10)],
        ['listAudit', () => r.listAudit()],
        ['getAdminUser', () => r.getAdminUser('admin')],
        ['listAdminUsers', () => r.listAdminUsers()],
        ['getAdminToken', () => r.getAdminToken('h')],
        ['listAdminTokens', () => r.listAdminTokens(0)],
        ['schedulerCheckIns', () => r.schedulerCheckIns()],
        ['schedulerJobs', () => r.schedulerJobs()],
        ['schedulerRuns', () => r.schedulerRuns('s', 10)],
        ['saveConfigDocument', () => save(r, SECTION_A, { n: 2 })],
        ['appendAudit', () => r.appendAudit({ user: 'u', node: 'n', action: 'test', summary: 's' })],
      ];
      for (const [method, call] of calls) {
        await assert.rejects(call(), (err: unknown) => {
          assert.equal((err as { code?: unknown }).code, 'REPO_UNAVAILABLE', `${method}: ${String(err)}`);
          return true;
        });
      }
    });

    it('a reopened repository sees the documents, head and audit written before', async (t) => {
      const store = await setup(t);
      if (!store) return;
      await save(store.repo, SECTION_A, { n: 1 });
      await save(store.repo, SECTION_B, { n: 2 }, { epoch: 1 });
      await store.repo.raiseEpoch(2, 'ops', 'replica-1', 'promote');
      await store.repo.appendAudit({ user: 'u', node: 'n', action: 'test', summary: 's' });
      const current = await store.repo.getCurrentConfig();
      const audit = await store.repo.listAudit();
      await store.repo.close();
      const again = await store.reopen();
      assert.deepEqual(await again.getCurrentConfig(), current);
      assert.deepEqual(await again.listAudit(), audit);
      assert.equal((await save(again, SECTION_A, { n: 3 })).version, 3);
    });
  });
}
