import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/node/hot-metrics.js';

const BUCKETS = [0.00005, 0.001, 0.01, 0.5, 2.5];
const VALUES = [0, 0.00005, 0.00007, 0.001, 0.2, 0.5, 3, 0.004, 1e-7];

describe('hot metrics', () => {
  it('a histogram gives the same Prometheus text as prom-client\'s for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    for (const r of [ours, theirs]) r.setDefaultLabels({ node: 'n1' });
    const hot = new HotHistogram({ name: 'cohort_x_seconds', help: 'x.', labelNames: ['route', 'status'], buckets: BUCKETS, registry: ours });
    const reference = new Histogram({ name: 'cohort_x_seconds', help: 'x.', labelNames: ['route', 'status'], buckets: BUCKETS, registers: [theirs] });
    VALUES.forEach((v, i) => {
      const labels = { route: i % 2 === 0 ? '/a' : '/b', status: '200' };
      hot.seriesFor(labels.route, labels).observe(v);
      reference.observe(labels, v);
    });
    assert.equal(await ours.metrics(), await theirs.metrics());
    // JSON: the same labels and values (prom-client adds exemplar fields, empty here).
    const plain = async (r: Registry) => (await r.getMetricsAsJSON()).map((m) => m.values.map((v) => ({ labels: v.labels, value: v.value, metricName: (v as { metricName?: string }).metricName })));
    assert.deepEqual(await plain(ours), await plain(theirs));
  });

  it('a histogram without labels, and a counter, likewise; a series is made once per key', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotHistogram({ name: 'cohort_d_seconds', help: 'd.', labelNames: [], buckets: BUCKETS, registry: ours }).seriesFor('', {});
    const reference = new Histogram({ name: 'cohort_d_seconds', help: 'd.', buckets: BUCKETS, registers: [theirs] });
    for (const v of VALUES) {
      hot.observe(v);
      reference.observe(v);
    }
    const counter = new HotCounter({ name: 'cohort_c_total', help: 'c.', labelNames: ['api', 'decision'], registry: ours });
    const refCounter = new Counter({ name: 'cohort_c_total', help: 'c.', labelNames: ['api', 'decision'], registers: [theirs] });
    const allow = counter.seriesFor('a allow', { api: 'a', decision: 'allow' });
    assert.equal(counter.seriesFor('a allow', { api: 'a', decision: 'allow' }), allow);
    allow.inc();
    allow.inc(2);
    counter.seriesFor('a deny', { api: 'a', decision: 'deny' }).inc();
    refCounter.inc({ api: 'a', decision: 'allow' }, 3);
    refCounter.inc({ api: 'a', decision: 'deny' });
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('refuses a series missing a label, and a second metric of the same name', () => {
    const registry = new Registry();
    const hot = new HotHistogram({ name: 'cohort_y_seconds', help: 'y.', labelNames: ['route'], buckets: BUCKETS, registry });
    assert.throws(() => hot.seriesFor('k', {} as { route: string }), /label route missing/);
    assert.throws(() => new HotCounter({ name: 'cohort_y_seconds', help: 'y.', labelNames: [], registry }), /already been registered/);
  });

  it('a series found by its three label values is the one its labels name, found again by the same values, and forgotten on reset', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const counter = new HotCounter({ name: 'cohort_v_total', help: 'v.', labelNames: ['api', 'decision', 'reason'], registry: ours });
    const reference = new Counter({ name: 'cohort_v_total', help: 'v.', labelNames: ['api', 'decision', 'reason'], registers: [theirs] });
    const seen: Array<[string, string, string]> = [['a', 'allow', 'OK'], ['a', 'deny', 'NO'], ['b', 'allow', 'OK'], ['a', 'allow', 'OK'], ['', 'deny', 'NO']];
    for (const [api, decision, reason] of seen) {
      counter.seriesOfValues(api, decision, reason).inc();
      reference.inc({ api, decision, reason });
    }
    assert.equal(counter.seriesOfValues('a', 'allow', 'OK'), counter.seriesOfValues('a', 'allow', 'OK'));
    assert.equal(await ours.metrics(), await theirs.metrics());
    ours.resetMetrics();
    theirs.resetMetrics();
    counter.seriesOfValues('a', 'allow', 'OK').inc();
    reference.inc({ api: 'a', decision: 'allow', reason: 'OK' });
    assert.equal(await ours.metrics(), await theirs.metrics());
    const two = new HotCounter({ name: 'cohort_w_total', help: 'w.', labelNames: ['api', 'decision'], registry: ours });
    assert.throws(() => two.seriesOfValues('a', 'b', 'c'), /three labels/);
  });
});
