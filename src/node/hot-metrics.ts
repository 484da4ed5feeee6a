/**
 * A histogram and a counter for the metrics observed on every request (HTTP durations, RPC
 * latency, access decisions), served by the node's prom-client registry like every other
 * metric, with the same text (`_bucket` lines with `le`, `_sum`, `_count`).
 *
 * Why not prom-client's own: its `observe` and `inc` turn the labels into a key (sorting and
 * joining them) and validate them on every call, a labelled child included; on a forward-auth
 * decision that was a tenth of the engine's JavaScript time. Here a caller takes the series of
 * its labels once (`find(key) ?? seriesFor(key, labels)`, keyed by a string the caller already
 * has) and each observation is a few array writes.
 */
import type { Registry } from 'prom-client';

type Labels<L extends string> = Readonly<Record<L, string>>;

/** One labelled series of a histogram: counts per bucket, their sum and count. */
export class HistogramSeries {
  /** Observations per bucket, not cumulative; the last one is +Inf. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Adds one observation of `value` (seconds, or whatever unit the histogram's bounds are in). */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /**
   * prom-client's values for this series: cumulative buckets, then sum and count; the series'
   * labels as `sharedLabels` after `le`, as prom-client's histogram gives them, so the text is
   * the same line for line.
   */
  values(name: string): MetricValue[] {
    const out: MetricValue[] = [];
    const shared = this.labels;
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!;
      out.push({ labels: { le: this.bounds[i]! }, sharedLabels: shared, value: cumulative, metricName: `${name}_bucket` });
    }
    out.push(
      { labels: { le: '+Inf' }, sharedLabels: shared, value: this.count, metricName: `${name}_bucket` },
      { labels: {}, sharedLabels: shared, value: this.sum, metricName: `${name}_sum` },
      { labels: {}, sharedLabels: shared, value: this.count, metricName: `${name}_count` },
    );
    return out;
  }
}

/** One labelled series of a counter. */
export class CounterSeries {
  value = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}

  inc(by = 1): void {
    this.value += by;
  }
}

/** What prom-client's registry reads of a metric (`get()`), for its text and JSON. */
interface MetricValue {
  labels: Record<string, string | number>;
  sharedLabels?: Readonly<Record<string, string>>;
  value: number;
  metricName?: string;
}

interface MetricObject {
  name: string;
  help: string;
  type: 'histogram' | 'counter';
  values: MetricValue[];
  aggregator: 'sum';
}

/** The metric's registration: prom-client's registry takes any object with name, help, type and get(). */
abstract class HotMetric<L extends string, S> {
  protected readonly series = new Map<string, S>();
  /** `seriesOfValues`' index: label value by label value. */
  private readonly byValues = new Map<string, Map<string, Map<string, S>>>();
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /**
   * The series already made for `key`, if any. A hot path asks this first and calls
   * `seriesFor` only when it gives nothing, so the labels object is built once per series, not
   * once per observation.
   */
  find(key: string): S | undefined {
    return this.series.get(key);
  }

  /**
   * The series of `labels`, made on its first use. `key` names the label values uniquely (the
   * caller builds it from what it has; no sorting or joining here).
   */
  seriesFor(key: string, labels: Labels<L>): S {
    let s = this.find(key);
    if (s === undefined) {
      for (const name of this.labelNames) if (typeof labels[name] !== 'string') throw new Error(`${this.name}: label ${name} missing`);
      s = this.make({ ...labels });
      this.series.set(key, s);
    }
    return s;
  }

  /**
   * The series of a metric with three labels, found by the label values themselves (in the
   * order of its label names): a hot path whose values are strings it already holds (an id
   * from the configuration, a constant) then joins and hashes no new string per observation.
   */
  seriesOfValues(a: string, b: string, c: string): S {
    let byB = this.byValues.get(a);
    if (byB === undefined) this.byValues.set(a, (byB = new Map()));
    let byC = byB.get(b);
    if (byC === undefined) byB.set(b, (byC = new Map()));
    let s = byC.get(c);
    if (s === undefined) {
      if (this.labelNames.length !== 3) throw new Error(`${this.name}: seriesOfValues needs three labels, it has ${this.labelNames.length}`);
      const [x, y, z] = this.labelNames as readonly [L, L, L];
      s = this.seriesFor(`${a}\u0000${b}\u0000${c}`, { [x]: a, [y]: b, [z]: c } as Labels<L>);
      byC.set(c, s);
    }
    return s;
  }

  protected abstract make(labels: Record<string, string>): S;

  /** Forgets every series (prom-client's registry calls it on resetMetrics). */
  reset(): void {
    this.series.clear();
    this.byValues.clear();
  }
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramSeries> {
  readonly type = 'histogram' as const;

  private readonly bounds: number[];

  constructor(o: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registry: Registry }) {
    super(o.name, o.help, o.labelNames, o.registry);
    this.bounds = [...o.buckets].sort((a, b) => a - b);
  }

  protected make(labels: Record<string, string>): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }

  /** For the text format (prom-client's registry asks for this first). */
  getForPromString(): MetricObject {
    const values: MetricValue[] = [];
    for (const s of this.series.values()) values.push(...s.values(this.name));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** For JSON: each value's labels in one object, as prom-client's histogram gives them. */
  get(): MetricObject {
    const data = this.getForPromString();
    data.values = data.values.map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } }));
    return data;
  }
}

export class HotCounter<L extends string> extends HotMetric<L, CounterSeries> {
  readonly type = 'counter' as const;

  constructor(o: { name: string; help: string; labelNames: readonly L[]; registry: Registry }) {
    super(o.name, o.help, o.labelNames, o.registry);
  }

  protected make(labels: Record<string, string>): CounterSeries {
    return new CounterSeries(labels);
  }

  get(): MetricObject {
    const values = [...this.series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
