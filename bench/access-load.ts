/**
 * The load generator of bench/load-runner.ts when wrk is missing: autocannon in a process of
 * its own (so that the client does not share the bench's event loop), cycling through the
 * requests of a JSON file, one per request sent. Prints one JSON line with the figures
 * (latency in ms at each percentile autocannon reports).
 *
 * Usage: node dist/bench/access-load.js FILE
 *   FILE: {"url", "connections", "seconds", "requests": [{method?, path, headers, body?}, ...]}
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

interface JobRequest {
  method?: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}
const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { url: string; connections: number; seconds: number; requests: JobRequest[] };
let i = 0;
const r = await autocannon({
  url: job.url,
  connections: job.connections,
  duration: job.seconds,
  requests: [
    {
      setupRequest: (req: Record<string, unknown>) => {
        const next = job.requests[i++ % job.requests.length]!;
        return { ...req, method: next.method ?? 'GET', path: next.path, headers: next.headers, ...(next.body === undefined ? {} : { body: next.body }) };
      },
    },
  ],
});
// Its latency at each percentile it reports (keys such as p2_5 for 2.5), and the maximum.
const points = Object.entries(r.latency)
  .filter(([k]) => /^p\d+(_\d+)?$/.test(k))
  .map(([k, v]) => [Number(k.slice(1).replace('_', '.')), v] as [number, number])
  .concat([[100, r.latency.max!]])
  .sort((a, b) => a[0] - b[0]);
process.stdout.write(`${JSON.stringify({ requests: r.requests.total, seconds: r.duration, errors: r.errors + r.non2xx + r.timeouts, points })}\n`);
