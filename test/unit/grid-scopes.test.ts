/**
 * Scopes (state/grid/scopes.ts): subclusters (`group_id`, `inter_group`) and `directed`
 * placement (`preferred_node_indices`), as pure functions and on a simulated grid.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_INTER_GROUP } from '../../src/config/schema.js';
import { parseSessionId, scopedRouting } from '../../src/state/grid/grid-provider.js';
import { CLUSTER_SCOPE, indexFromNodeId, scopeCode, scopeKeyOf, scopeMembers, scopedPartition, type ScopeSettings } from '../../src/state/grid/scopes.js';
import { SimGrid } from '../helpers/sim-grid.js';

const adaptive = (groupId: string | null = null): ScopeSettings => ({ architecture: 'adaptive', groupId, interGroup: DEFAULT_INTER_GROUP, preferredNodeIndices: {} });
const SESSION = { idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 };

describe('grid scopes: keys, members, partitions, session ids', () => {
  it('names each service\'s scope from the engine\'s settings', () => {
    assert.equal(scopeKeyOf('session', adaptive()), CLUSTER_SCOPE);
    assert.equal(scopeKeyOf('session', adaptive('east')), 'east');
    assert.equal(scopeKeyOf('token', adaptive('east')), 'east');
    for (const s of DEFAULT_INTER_GROUP) assert.equal(scopeKeyOf(s, adaptive('east')), CLUSTER_SCOPE, `${s} is shared by every subcluster by default`);
    // preferred_node_indices counts only with directed; indices are sorted and deduplicated.
    const prefs = { session: [3, 1, 3] };
    assert.equal(scopeKeyOf('session', { ...adaptive('east'), preferredNodeIndices: prefs }), 'east');
    assert.equal(scopeKeyOf('session', { ...adaptive('east'), architecture: 'directed', preferredNodeIndices: prefs }), 'east|1,3');
    assert.equal(scopeKeyOf('session', { ...adaptive(), architecture: 'directed', preferredNodeIndices: prefs }), '*|1,3');
    assert.equal(scopeKeyOf('state', { ...adaptive(), architecture: 'directed', preferredNodeIndices: prefs }), CLUSTER_SCOPE);
  });

  it('finds a scope\'s members by group and node index', () => {
    const engines = [
      { id: 'a', group: 'east', index: 1 },
      { id: 'b', group: 'east', index: 2 },
      { id: 'c', group: 'west', index: 3 },
      { id: 'd', group: null, index: null },
    ];
    assert.deepEqual(scopeMembers(CLUSTER_SCOPE, engines), ['a', 'b', 'c', 'd']);
    assert.deepEqual(scopeMembers('east', engines), ['a', 'b']);
    assert.deepEqual(scopeMembers('east|2,3', engines), ['b']);
    assert.deepEqual(scopeMembers('*|1,3', engines), ['a', 'c']);
    assert.deepEqual(scopeMembers('north', engines), []);
  });

  it('numbers each scope\'s partitions apart, the cluster-wide scope as plain partitions', () => {
    assert.equal(scopedPartition(CLUSTER_SCOPE, 42), 42);
    assert.notEqual(scopeCode('east'), scopeCode('west'));
    assert.ok(scopeCode('east') > 0 && scopedPartition('east', 270) % 1000 === 270);
    assert.equal(indexFromNodeId('engine-12'), 12);
    assert.equal(indexFromNodeId('console'), null);
  });

  it('writes the group into session ids and routes them to that subcluster\'s scope', () => {
    const east = scopedRouting({ session: 'east', lockout: '*', replay: '*', artifact: 'east', state: 'east', token: 'east', rate_limit: '*' }, (g) => (g === 'west' ? 'west|4,5' : undefined));
    const { id, partition } = east.newSession('alice');
    assert.match(id, /^east\.\d{1,3}\.[A-Za-z0-9_-]{32}$/);
    assert.equal(east.sessionPartition(id), partition);
    const p = parseSessionId(id)!.partition;
    assert.equal(partition, scopedPartition('east', p));
    assert.equal(east.sessionPartition(`west.${p}.xyz`), scopedPartition('west|4,5', p), 'another subcluster, as its engines tell');
    assert.equal(east.sessionPartition(`north.${p}.xyz`), undefined, 'a subcluster nobody knows');
    assert.equal(east.sessionPartition(`${p}.xyz`), p, 'an id without a group is cluster-wide');
    for (const bad of ['', 'x', '1.', '.abc', '999.abc', 'a/b.1.abc', '1x.abc']) assert.equal(east.sessionPartition(bad), undefined, bad);
    assert.equal(east.partition('replay', 'replay:r1') < 1000, true, 'replay ids stay cluster-wide');
  });
});

describe('grid scopes on a simulated grid', () => {
  it('keeps a subcluster\'s sessions on its engines, reads them from any engine, and shares replay ids and revocations with every subcluster', async () => {
    // engine-1, engine-2: east; engine-3 … engine-5: west.
    const scopes = [adaptive('east'), adaptive('east'), adaptive('west'), adaptive('west'), adaptive('west')];
    const grid = await SimGrid.started(5, { scopes });
    try {
      const eastSession = await grid.provider(0).sessions.create({ subject: 'alice', ...SESSION });
      const westSession = await grid.provider(3).sessions.create({ subject: 'bob', ...SESSION });
      assert.match(eastSession.id, /^east\./);
      assert.match(westSession.id, /^west\./);
      const holders = (id: string) => grid.engines.filter((e) => e.store.has('session', id)).map((e) => e.id);
      assert.deepEqual(holders(eastSession.id), ['engine-1', 'engine-2'], 'east sessions stay in east');
      assert.deepEqual(holders(westSession.id), ['engine-3', 'engine-4', 'engine-5'], 'west sessions stay in west');
      for (let i = 0; i < 5; i++) {
        assert.equal((await grid.provider(i).sessions.get(eastSession.id))?.subject, 'alice', `engine-${i + 1} reads the east session`);
        assert.equal((await grid.provider(i).sessions.get(westSession.id))?.subject, 'bob', `engine-${i + 1} reads the west session`);
      }
      // Listing by subject stays within the subcluster asked.
      assert.equal((await grid.provider(1).sessions.listBySubject('alice')).length, 1);
      assert.equal((await grid.provider(2).sessions.listBySubject('alice')).length, 0);

      // Token cache: within the subcluster.
      await grid.provider(0).tokens.put('t1', { v: 1 }, 60_000);
      assert.deepEqual(await grid.provider(1).tokens.get('t1'), { v: 1 });
      assert.equal(await grid.provider(4).tokens.get('t1'), undefined);

      // Replay ids (inter_group by default): accepted once across both subclusters.
      assert.equal(await grid.provider(0).replay.checkAndInsert('assertion-1', 60_000), true);
      assert.equal(await grid.provider(4).replay.checkAndInsert('assertion-1', 60_000), false);

      // A revocation made in west reaches east; the east session is gone everywhere.
      await grid.provider(2).revocations.revoke(eastSession.id);
      for (let i = 0; i < 5; i++) assert.equal(await grid.provider(i).sessions.get(eastSession.id), undefined);
    } finally {
      grid.close();
    }
  });

  it('directed: keeps sessions on the preferred engines only, and survives one of them failing', async () => {
    const directed: ScopeSettings = { architecture: 'directed', groupId: null, interGroup: DEFAULT_INTER_GROUP, preferredNodeIndices: { session: [1, 2, 3] } };
    const grid = await SimGrid.started(5, { scopes: Array.from({ length: 5 }, () => directed) });
    try {
      const sessions = [];
      for (let i = 0; i < 20; i++) sessions.push(await grid.provider(4).sessions.create({ subject: `user-${i}`, ...SESSION }));
      for (const s of sessions) {
        assert.match(s.id, /^\d{1,3}\./, 'no group: a plain id');
        assert.deepEqual(grid.engines.filter((e) => e.store.has('session', s.id)).map((e) => e.id), ['engine-1', 'engine-2', 'engine-3']);
      }
      // Other services are not directed here: a value lands wherever the cluster-wide placement puts it.
      await grid.provider(0).requestState.put('k', 1, 60_000);
      grid.crash(0);
      grid.setActive([1, 2, 3, 4]);
      for (const s of sessions) assert.equal((await grid.provider(3).sessions.get(s.id))?.subject, s.subject);
      assert.equal(await grid.provider(4).requestState.get('k'), 1);
    } finally {
      grid.close();
    }
  });
});
