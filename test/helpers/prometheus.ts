/**
 * Scraping a node's `/metrics` and reading it with a Prometheus text-format parser
 * (parse-prometheus-text-format), as a Prometheus server would.
 */
import { createRequire } from 'node:module';

export interface MetricSample {
  value?: string;
  count?: string;
  sum?: string;
  buckets?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: MetricSample[];
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => MetricFamily[];

/**
 * Every family by name. The parser folds all series of a histogram into one, losing their
 * labels; so a histogram's TYPE and HELP lines are dropped first, and its `_bucket`, `_sum`
 * and `_count` series come out as families of their own, labels intact (the histogram's own
 * name then maps to its `_count` family, with its TYPE kept).
 */
export function parsePrometheus(text: string): Map<string, MetricFamily> {
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]!));
  const flat = text.replace(/^# (?:TYPE|HELP) (\S+) .*$/gm, (line, name: string) => (histograms.has(name) ? '' : line));
  // A name met again after another one (each histogram series writes its buckets, sum and
  // count in turn) comes out as a second family: merged here.
  const families = new Map<string, MetricFamily>();
  for (const f of parse(flat)) {
    const seen = families.get(f.name);
    families.set(f.name, seen ? { ...seen, metrics: [...seen.metrics, ...f.metrics] } : f);
  }
  for (const name of histograms) {
    const count = families.get(`${name}_count`);
    if (count) families.set(name, { ...count, name, type: 'HISTOGRAM' });
  }
  return families;
}

/** Fetches and parses `url`; throws on a status other than 200. */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Map<string, MetricFamily>> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 300)}`);
  return parsePrometheus(text);
}

/** The sum of a family's samples whose labels include `labels` (counters and gauges: value; histograms: count). */
export function total(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (!family) throw new Error(`no metric ${name}`);
  return family.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((sum, m) => sum + Number(m.value ?? m.count ?? 0), 0);
}
