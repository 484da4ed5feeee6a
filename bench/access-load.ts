/**
 * The load generator of bench/access.ts when wrk is missing: autocannon in a process of its
 * own (so that the client does not share the bench's event loop), cycling through the header
 * sets of a JSON file, one set per request. Prints one JSON line with the figures (latency in
 * ms at each percentile autocannon reports).
 *
 * Usage: node dist/bench/access-load.js FILE
 *   FILE: {"url", "path", "connections", "seconds", "headers": [{name: value}, ...]}
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: Record<string, number>;
  duration: number;
  errors: number;
  non2xx: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { url: string; path: string; connections: number; seconds: number; headers: Array<Record<string, string>> };
let i = 0;
const r = await autocannon({
  url: job.url,
  connections: job.connections,
  duration: job.seconds,
  requests: [{ method: 'GET', setupRequest: (req: Record<string, unknown>) => ({ ...req, path: job.path, headers: job.headers[i++ % job.headers.length] }) }],
});
// Its latency at each percentile it reports (keys such as p2_5 for 2.5), and the maximum.
const points = Object.entries(r.latency)
  .filter(([k]) => /^p\d+(_\d+)?$/.test(k))
  .map(([k, v]) => [Number(k.slice(1).replace('_', '.')), v] as [number, number])
  .concat([[100, r.latency.max!]])
  .sort((a, b) => a[0] - b[0]);
process.stdout.write(`${JSON.stringify({ requests: r.requests.total, seconds: r.duration, errors: r.errors + r.non2xx + r.timeouts, points })}\n`);
