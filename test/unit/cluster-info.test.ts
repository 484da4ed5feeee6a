import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterInfo } from '../../src/node/cluster-info.js';
import type { Member, MemberStatus } from '../../src/cluster/member-list.js';

function member(id: string, status: MemberStatus, overrides: Partial<Member> = {}, version = '1.0.0', role = 'engine'): Member {
  return { id, address: `127.0.0.1:${8000 + id.length}${id.at(-1)!.charCodeAt(0) % 10}`, incarnation: 1, status, meta: { role, version, mode: 'sideband', group: null }, statusSince: 0, clockOffsetMs: 0, ...overrides };
}

describe('cluster info (cohort cluster info --json)', () => {
  it('says which active engines refuse writes, as they announce it; other roles and inactive engines say nothing', () => {
    const refusing = member('e2', 'alive');
    refusing.meta = { ...refusing.meta, refusesWrites: true };
    const info = clusterInfo('shop', 'e1', [member('c', 'alive', {}, '1.0.0', 'console'), member('e1', 'alive'), refusing, member('e3', 'dead')]);
    assert.deepEqual(info.nodes.map((n) => [n.id, n.writes]), [['c', undefined], ['e1', 'accepted'], ['e2', 'refused'], ['e3', undefined]]);
  });


  it('maps member statuses to the states operators see and lists the console first', () => {
    const info = clusterInfo('shop', 'e1', [
      member('e2', 'suspect'),
      member('e1', 'alive'),
      member('c', 'alive', {}, '1.0.0', 'console'),
      member('e3', 'dead'),
      member('e4', 'left'),
    ]);
    assert.deepEqual(info.nodes.map((n) => [n.id, n.state, n.self]), [
      ['c', 'active', false], ['e1', 'active', true], ['e2', 'suspect', false], ['e3', 'inactive', false], ['e4', 'left', false],
    ]);
    assert.equal(info.clusterId, 'shop');
    assert.equal(info.node, 'e1');
  });

  it('reports mixed versions among active members only', () => {
    const same = clusterInfo('x', 'a', [member('a', 'alive'), member('b', 'dead', {}, '1.0.3')]);
    assert.deepEqual([same.mixedVersions, same.versions], [false, ['1.0.0']]);
    const mixed = clusterInfo('x', 'a', [member('a', 'alive'), member('b', 'suspect', {}, '1.0.3')]);
    assert.deepEqual([mixed.mixedVersions, mixed.versions], [true, ['1.0.0', '1.0.3']]);
  });

  it('measures skew between any two members, not only against itself, and warns above 1 s', () => {
    const calm = clusterInfo('x', 'a', [member('a', 'alive'), member('b', 'alive', { clockOffsetMs: 400 }), member('c', 'alive', { clockOffsetMs: -500 })]);
    assert.deepEqual([calm.clockSkewMs, calm.clockSkewWarning], [900, false]);
    const skewed = clusterInfo('x', 'a', [member('a', 'alive'), member('b', 'alive', { clockOffsetMs: 700 }), member('c', 'alive', { clockOffsetMs: -400 })]);
    assert.deepEqual([skewed.clockSkewMs, skewed.clockSkewWarning], [1100, true]);
    const unmeasured = clusterInfo('x', 'a', [member('a', 'alive'), member('b', 'alive', { clockOffsetMs: undefined })]);
    assert.deepEqual([unmeasured.clockSkewMs, unmeasured.nodes.find((n) => n.id === 'b')!.clockOffsetMs], [0, null]);
  });

  it('lists configured peers that do not resolve as not-resolved, unless they are members', () => {
    const a = member('a', 'alive');
    const info = clusterInfo('x', 'a', [a], ['nowhere.invalid:8020', a.address]);
    assert.deepEqual(info.nodes.map((n) => [n.id, n.address, n.state]), [['a', a.address, 'active'], [null, 'nowhere.invalid:8020', 'not-resolved']]);
  });
});
