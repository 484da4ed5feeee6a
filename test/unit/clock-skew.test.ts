import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterInfo } from '../../src/node/cluster-info.js';
import { PROFILES } from '../../src/cluster/timing.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

describe('clock-skew check (simulated cluster)', () => {
  function skewedCluster(skewMs: number): SimCluster {
    const cluster = new SimCluster({ nodes: 4, seed: 11, timing: PROFILES.local });
    cluster.skewClock(3, skewMs);
    cluster.run(5000);
    return cluster;
  }

  it('measures a node whose wall clock runs 2.5 s ahead, and cluster info warns', () => {
    const cluster = skewedCluster(2500);
    const [n0, , , n3] = cluster.nodes;
    const seenByN0 = n0!.membership.get(n3!.id)!.clockOffsetMs!;
    assert.ok(Math.abs(seenByN0 - 2500) <= 20, `n0 measured ${seenByN0} ms`);
    const seenByN3 = n3!.membership.get(n0!.id)!.clockOffsetMs!;
    assert.ok(Math.abs(seenByN3 + 2500) <= 20, `n3 measured ${seenByN3} ms`);
    const info = clusterInfo('sim', n0!.id, n0!.membership.list());
    assert.equal(info.clockSkewWarning, true);
    assert.ok(Math.abs(info.clockSkewMs - 2500) <= 20);
    // Skew is reported, not punished: nobody is suspected for it.
    assert.deepEqual(cluster.disagreements(), []);
    assert.ok(info.nodes.every((n) => n.state === 'active'));
  });

  it('does not warn about skew under 1 s', () => {
    const cluster = skewedCluster(-300);
    const n1 = cluster.nodes[1]!;
    const info = clusterInfo('sim', n1.id, n1.membership.list());
    assert.equal(info.clockSkewWarning, false);
    assert.ok(Math.abs(info.clockSkewMs - 300) <= 20, `skew ${info.clockSkewMs} ms`);
  });
});
