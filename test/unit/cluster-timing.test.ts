import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  PROFILES,
  expectedConfirmations,
  pushPullInterval,
  remainingSuspicionTime,
  retransmitLimit,
  resolveTiming,
  suspicionTimeout,
  timingProblems,
} from '../../src/cluster/timing.js';
import { TIMING_OVERRIDES } from '../../src/config/schema.js';
import { ManualClock } from '../../src/core/clock.js';
import { Suspicion } from '../../src/cluster/suspicion.js';
import { Awareness } from '../../src/cluster/awareness.js';
import { judgeJoin, versionSummary } from '../../src/node/compatibility.js';
import { probeTarget } from '../../src/cluster/probe-schedule.js';

describe('suspicion timeout', () => {
  const table: Array<[mult: number, n: number, interval: number, expected: number]> = [
    [4, 1, 1000, 4000],
    [4, 5, 1000, 4000], // below 10 nodes the log factor is held at 1
    [4, 10, 1000, 4000],
    [4, 100, 1000, 8000],
    [4, 1000, 1000, 12000],
    [3, 1000, 200, 1800],
    [6, 50, 5000, 50969],
  ];
  for (const [mult, n, interval, expected] of table) {
    it(`mult ${mult}, ${n} nodes, interval ${interval} ms -> ${expected} ms`, () => {
      assert.equal(suspicionTimeout(mult, n, interval), expected);
    });
  }
});

describe('remaining suspicion time shrinks with confirmations (Lifeguard)', () => {
  const table: Array<[c: number, k: number, elapsed: number, min: number, max: number, expected: number]> = [
    [0, 3, 0, 2000, 30000, 30000], // no confirmation: the maximum
    [1, 3, 0, 2000, 30000, 16000], // log(2)/log(4) = 0.5 of the way down
    [2, 3, 0, 2000, 30000, 7810],
    [3, 3, 0, 2000, 30000, 2000], // all expected confirmations: the minimum
    [4, 3, 0, 2000, 30000, 2000], // never below the minimum
    [1, 3, 5000, 2000, 30000, 11000], // elapsed time counts
    [3, 3, 2500, 2000, 30000, -500], // overdue: negative
    [0, 0, 0, 2000, 30000, 2000], // k = 0: the minimum at once
  ];
  for (const [c, k, elapsed, min, max, expected] of table) {
    it(`${c}/${k} confirmations after ${elapsed} ms in [${min}, ${max}] -> ${expected} ms`, () => {
      assert.equal(remainingSuspicionTime(c, k, elapsed, min, max), expected);
    });
  }
});

describe('timing helpers', () => {
  it('expect mult - 2 confirmations, none in clusters too small to give them', () => {
    assert.equal(expectedConfirmations(4, 10), 2);
    assert.equal(expectedConfirmations(4, 4), 2);
    assert.equal(expectedConfirmations(4, 3), 0);
    assert.equal(expectedConfirmations(3, 3), 1);
  });

  it('retransmit an update mult x ceil(log10(n + 1)) times', () => {
    assert.deepEqual([1, 9, 10, 99, 100, 1000].map((n) => retransmitLimit(4, n)), [4, 4, 8, 8, 12, 16]);
  });

  it('slow push-pull down beyond 32 members, logarithmically', () => {
    assert.deepEqual([10, 32, 33, 64, 65, 1000].map((n) => pushPullInterval(30000, n)), [30000, 30000, 60000, 60000, 90000, 180000]);
  });

  it('stretch timeouts by the health score', () => {
    const a = new Awareness(8);
    assert.equal(a.scale(500), 500);
    a.apply(3);
    assert.equal(a.scale(500), 2000);
  });

  it('keep profiles ordered from fastest to slowest', () => {
    assert.ok(PROFILES.local.probeIntervalMs < PROFILES.lan.probeIntervalMs && PROFILES.lan.probeIntervalMs < PROFILES.wan.probeIntervalMs);
    for (const p of Object.values(PROFILES)) assert.ok(p.probeTimeoutMs < p.probeIntervalMs, 'a probe times out within its interval');
  });
});

describe('Suspicion timer', () => {
  it('fires at the maximum without confirmations, sooner with them, once', () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    const s = new Suspicion(clock, 'a', 3, 1000, 6000, () => fired.push(clock.now()));
    clock.advance(2000);
    assert.equal(s.confirm('b'), true);
    assert.equal(s.confirm('b'), false, 'the same confirmer counts once');
    assert.equal(s.confirm('a'), false, 'the first suspector is not a confirmation');
    clock.advance(10_000);
    assert.deepEqual(fired, [3500]); // 6000 - 5000 * 0.5
  });

  it('fires immediately when confirmations make it overdue, and never after cancel', () => {
    const clock = new ManualClock(0);
    let fired = 0;
    const s = new Suspicion(clock, 'a', 1, 1000, 6000, () => fired++);
    clock.advance(1500);
    s.confirm('b');
    assert.equal(fired, 1);
    const t = new Suspicion(clock, 'a', 1, 1000, 6000, () => fired++);
    t.cancel();
    clock.advance(10_000);
    assert.equal(fired, 1);
  });
});

describe('local health awareness', () => {
  it('rises and falls within [0, max - 1]', () => {
    const a = new Awareness(8);
    a.apply(-1);
    assert.equal(a.healthScore, 0);
    for (let i = 0; i < 20; i++) a.apply(1);
    assert.equal(a.healthScore, 7);
    assert.equal(a.scale(100), 800);
  });
});

describe('join rules', () => {
  const local = { role: 'console', version: '1.4.2', mode: 'sideband', group: null };
  const candidate = (over: Partial<typeof local> = {}, id = 'engine-9', address = '10.0.0.9:8020') => ({ id, address, meta: { ...local, role: 'engine', ...over } });
  const members = [{ id: 'engine-1', address: '10.0.0.1:8020', active: true }, { id: 'engine-2', address: '10.0.0.2:8020', active: false }];

  const table: Array<[string, ReturnType<typeof candidate>, string | undefined]> = [
    ['same version and mode', candidate(), undefined],
    ['another maintenance version', candidate({ version: '1.4.9' }), undefined],
    ['another minor version', candidate({ version: '1.5.0' }), 'CLUSTER_JOIN_VERSION_MISMATCH'],
    ['another major version', candidate({ version: '2.4.2' }), 'CLUSTER_JOIN_VERSION_MISMATCH'],
    ['an unparseable version', candidate({ version: 'banana' }), 'CLUSTER_JOIN_VERSION_MISMATCH'],
    ['another mode', candidate({ mode: 'inline' }), 'CLUSTER_JOIN_MODE_MISMATCH'],
    ['an id held by an active member elsewhere', candidate({}, 'engine-1'), 'CLUSTER_JOIN_DUPLICATE_NODE_ID'],
    ['an id held by the same address (a restart)', candidate({}, 'engine-1', '10.0.0.1:8020'), undefined],
    ['an id held by an inactive member', candidate({}, 'engine-2'), undefined],
  ];
  for (const [name, c, code] of table) {
    it(`${code ? 'refuses' : 'accepts'} ${name}`, () => {
      const v = judgeJoin(c, local, members);
      assert.equal(v.ok ? undefined : v.code, code);
    });
  }

  it('reports mixed maintenance versions', () => {
    assert.deepEqual(versionSummary(['1.0.1', '1.0.0', '1.0.1']), { versions: ['1.0.0', '1.0.1'], mixedVersions: true });
    assert.deepEqual(versionSummary(['1.0.0']), { versions: ['1.0.0'], mixedVersions: false });
  });
});

describe('probe schedule (randomized round-robin computed alike on every node)', () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  it('probes each member by exactly one node at every step, never oneself', () => {
    for (let step = 0; step < 50; step++) {
      const targets = ids.map((self) => probeTarget(ids, self, step));
      assert.deepEqual([...targets].sort(), [...ids].sort(), `step ${step}`);
      ids.forEach((self, i) => assert.notEqual(targets[i], self));
    }
  });

  it('has every node probe every other member once per round', () => {
    for (const self of ids) {
      for (let round = 0; round < 5; round++) {
        const seen = new Set<string>();
        for (let s = round * (ids.length - 1); s < (round + 1) * (ids.length - 1); s++) seen.add(probeTarget(ids, self, s)!);
        assert.equal(seen.size, ids.length - 1);
        assert.ok(!seen.has(self));
      }
    }
  });

  it('reshuffles the ring from round to round', () => {
    const first = ids.map((self) => probeTarget(ids, self, 0)).join();
    const later = Array.from({ length: 10 }, (_, r) => ids.map((self) => probeTarget(ids, self, (r + 1) * (ids.length - 1))).join());
    assert.ok(later.some((x) => x !== first));
  });

  it('has nothing to probe alone', () => {
    assert.equal(probeTarget(['a'], 'a', 3), undefined);
    assert.equal(probeTarget(['a', 'b'], 'a', 3), 'b');
  });
});

describe('timing overrides', () => {
  it('every [cluster] timing key names a field of the membership timings', () => {
    for (const t of TIMING_OVERRIDES) assert.equal(typeof PROFILES.lan[t.field], 'number', `${t.key} -> ${t.field}`);
    assert.equal(TIMING_OVERRIDES.length, Object.keys(PROFILES.lan).length, 'every timing can be overridden');
  });

  it('applies overrides over the profile', () => {
    const t = resolveTiming('lan', { probeIntervalMs: 2000, indirectChecks: 5 });
    assert.deepEqual(t, { ...PROFILES.lan, probeIntervalMs: 2000, indirectChecks: 5 });
    assert.deepEqual(resolveTiming('local', {}), PROFILES.local);
  });

  it('finds clashes that each value alone would not show', () => {
    for (const p of ['lan', 'wan', 'local'] as const) assert.deepEqual(timingProblems(PROFILES[p]), [], `${p} is consistent`);
    assert.match(timingProblems(resolveTiming('lan', { probeTimeoutMs: 1000 })).join(), /probe_timeout \(1000 ms\) must be less than probe_interval \(1000 ms\)/);
    assert.match(timingProblems(resolveTiming('local', { gossipIntervalMs: 500 })).join(), /gossip_interval/);
  });
});
