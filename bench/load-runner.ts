/**
 * HTTP load from a separate process, for the benches that compare a Cohort endpoint with its
 * peer (bench/access.ts, bench/runtime.ts): a load generator that shares the bench's event
 * loop sets the pace itself and measures the client, not the server.
 *
 * - wrk (`/usr/bin/wrk`) with a generated Lua script that formats every request once per
 *   thread and cycles through them, printing its figures as one JSON line; or, where wrk is
 *   missing, autocannon in a child process (bench/access-load.ts) cycling the same way.
 * - Each run also takes the CPU time (user and system, from /proc) that the process group
 *   serving it used: on a busy machine, throughput says as much about the other processes as
 *   about the server, while CPU per request hardly depends on them.
 * - Rows take turns (`measureGroup`): a warm-up of each, then rounds in which every row runs
 *   once, so a change in the machine's load hits a row and its peer alike; a row's figures
 *   are its slices together (bench/quantiles.ts).
 */
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGrouped } from './nodes.js';
import { mergedPercentile, REPORTED_PERCENTILES, type QuantileSlice } from './quantiles.js';

const AUTOCANNON_LOAD = fileURLToPath(new URL('./access-load.js', import.meta.url));
const PACED_LOAD = fileURLToPath(new URL('./paced-load.js', import.meta.url));
export const WRK = '/usr/bin/wrk';

export type LoadTool = 'wrk' | 'autocannon';

/** wrk where it is installed, else autocannon in a child process. */
export function defaultLoadTool(): LoadTool {
  return existsSync(WRK) ? 'wrk' : 'autocannon';
}

/** One request of the cycle a load run sends, in turn. */
export interface LoadRequest {
  method?: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  tool: LoadTool;
  /** Where the run's script or job file is written. */
  dir: string;
  /** Names the script or job file (unique per run). */
  name: string;
  /** `http://host:port`. */
  base: string;
  requests: readonly LoadRequest[];
  /** Whole seconds (wrk takes no fractions). */
  seconds: number;
  connections: number;
  threads: number;
  /**
   * Requests a second, on a fixed schedule (bench/paced-load.ts), instead of as fast as the
   * server answers: latency compared between two servers at the same load.
   */
  rate?: number;
  /** With `rate`: how long after the last request fell due answers are waited for (ms; default 30 s). */
  graceMs?: number;
}

/** What one load run measured. */
export interface Slice extends QuantileSlice {
  seconds: number;
  errors: number;
  /** CPU time the serving processes used during the slice (ms), when known. */
  cpuMs?: number;
}

/** What one row measured (its slices together). */
export interface LoadFigures {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Connection errors, timeouts and answers of 400 or more (wrk), other than 2xx (autocannon). */
  errors: number;
  requests: number;
  /** CPU time of the serving processes per request (µs); null where /proc is not there. */
  cpuUsPerRequest: number | null;
}

/** A Lua string literal (wrk's scripts are Lua). */
function lua(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
}

/**
 * A wrk script that formats every request once at thread start (so that the client spends its
 * time sending, not building requests) and cycles through them; `done` prints the figures as
 * one JSON line. wrk counts answers of 400 or more as errors (`status`).
 */
export function wrkScript(requests: readonly LoadRequest[]): string {
  const entries = requests.map((r) => {
    const headers = `{${Object.entries(r.headers).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')}}`;
    return `{${lua(r.method ?? 'GET')}, ${lua(r.path)}, ${headers}${r.body === undefined ? '' : `, ${lua(r.body)}`}}`;
  });
  return [
    `local entries = {\n${entries.join(',\n')}\n}`,
    'local requests = {}',
    'local i = 0',
    'init = function(args)',
    '  for k, e in ipairs(entries) do requests[k] = wrk.format(e[1], e[2], e[3], e[4]) end',
    // Threads start at different places, so that they do not ask for the same key at once.
    '  i = math.random(#requests)',
    'end',
    'request = function()',
    '  i = i % #requests + 1',
    '  return requests[i]',
    'end',
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    `  local ps = {${REPORTED_PERCENTILES.join(', ')}}`,
    '  local points = {}',
    '  for k, p in ipairs(ps) do points[k] = string.format("[%s,%d]", tostring(p), latency:percentile(p)) end',
    // wrk's percentile(100) answers 0: the maximum is its own field.
    '  points[#ps + 1] = string.format("[100,%d]", latency.max)',
    '  io.write(string.format(\'WRK-FIGURES {"requests":%d,"durationUs":%d,"errors":%d,"pointsUs":[%s]}\\n\',',
    '    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout, table.concat(points, ",")))',
    'end',
    '',
  ].join('\n');
}

/** Collects a child's stdout; resolves with it when the child exits 0. */
async function output(child: ReturnType<typeof spawnGrouped>, what: string): Promise<string> {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${what} exited with ${code}: ${out.slice(-2000)}`);
  return out;
}

/** One load run from a separate process: the requests in turn, for `seconds`. */
export async function runLoad(o: LoadOptions): Promise<Slice> {
  const threads = Math.max(1, Math.min(o.threads, o.connections));
  if (o.rate !== undefined) return nodeLoad(PACED_LOAD, 'paced load', o, { rate: o.rate, ...(o.graceMs !== undefined ? { graceMs: o.graceMs } : {}) });
  if (o.tool === 'wrk') {
    const script = join(o.dir, `${o.name}.lua`);
    writeFileSync(script, wrkScript(o.requests));
    const child = spawnGrouped(WRK, ['-t', String(threads), '-c', String(o.connections), '-d', `${o.seconds}s`, '--timeout', '5s', '-s', script, `${o.base}${o.requests[0]!.path}`], ['ignore', 'pipe', 'inherit']);
    const out = await output(child, 'wrk');
    const line = out.split('\n').find((l) => l.startsWith('WRK-FIGURES '));
    if (!line) throw new Error(`wrk printed no figures: ${out}`);
    const f = JSON.parse(line.slice('WRK-FIGURES '.length)) as { requests: number; durationUs: number; errors: number; pointsUs: Array<[number, number]> };
    return { requests: f.requests, seconds: f.durationUs / 1e6, errors: f.errors, points: f.pointsUs.map(([p, us]) => [p, us / 1000]) };
  }
  return nodeLoad(AUTOCANNON_LOAD, 'autocannon', o, {});
}

/**
 * A load run by one of the bench's own Node scripts (autocannon's, the paced one): the job in a
 * JSON file, the figures as the last line the script prints.
 */
async function nodeLoad(script: string, what: string, o: LoadOptions, extra: Record<string, unknown>): Promise<Slice> {
  const job = join(o.dir, `${o.name}.json`);
  writeFileSync(job, JSON.stringify({ url: o.base, connections: o.connections, seconds: o.seconds, ...extra, requests: o.requests }));
  const out = await output(spawnGrouped(process.execPath, [script, job], ['ignore', 'pipe', 'inherit']), what);
  const f = JSON.parse(out.trim().split('\n').pop()!) as Slice;
  return { requests: f.requests, seconds: f.seconds, errors: f.errors, points: f.points };
}

/** A row's slices together: throughput over their whole time, percentiles of their mixture, CPU per request. */
export function figures(slices: readonly Slice[]): LoadFigures {
  const requests = slices.reduce((a, s) => a + s.requests, 0);
  const seconds = slices.reduce((a, s) => a + s.seconds, 0);
  const cpu = slices.length > 0 && requests > 0 && slices.every((s) => s.cpuMs !== undefined) ? (slices.reduce((a, s) => a + s.cpuMs!, 0) * 1000) / requests : null;
  return { rps: requests / seconds, p50Ms: mergedPercentile(slices, 50), p99Ms: mergedPercentile(slices, 99), errors: slices.reduce((a, s) => a + s.errors, 0), requests, cpuUsPerRequest: cpu };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * CPU time (ms) used so far by the processes of group `pgid` (user and system, from /proc):
 * unlike throughput, CPU time per request hardly depends on how many other processes want the
 * machine's cores, so it compares a row with its peer even on a busy machine. Undefined where
 * /proc cannot be read.
 */
export function groupCpuMs(pgid: number): number | undefined {
  let ticks = 0;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // Fields after the command (which may hold spaces), from field 3 on.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) !== pgid) continue;
      ticks += Number(f[11]) + Number(f[12]);
    }
  } catch {
    return undefined;
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/** One load run with the CPU time of the process group `group` serving it. */
export async function runMeasured(o: LoadOptions, group: number): Promise<Slice> {
  const cpuBefore = groupCpuMs(group);
  const slice = await runLoad(o);
  const cpuAfter = groupCpuMs(group);
  if (cpuBefore !== undefined && cpuAfter !== undefined) slice.cpuMs = cpuAfter - cpuBefore;
  return slice;
}

/** A row of a group measured in turns. */
export interface Row {
  name: string;
  base: string;
  requests: readonly LoadRequest[];
  /** The process group serving the row: its CPU time per request is measured. */
  group: number;
}

export interface GroupOptions {
  tool: LoadTool;
  dir: string;
  connections: number;
  threads: number;
  /** Seconds of each row's warm-up (figures dropped); 0: none. */
  warmupSeconds: number;
  rounds: number;
  /** Seconds of each row in each round. */
  sliceSeconds: number;
  /** A fixed rate for every row (see LoadOptions.rate); none: as fast as each row answers. */
  rate?: number;
  log(text: string): void;
}

/** A warm-up of each row (figures dropped), then `rounds` rounds in which every row runs once, in turn: each row's slices. */
export async function measureGroupSlices(rows: readonly Row[], o: GroupOptions): Promise<Slice[][]> {
  const base = { tool: o.tool, dir: o.dir, connections: o.connections, threads: o.threads, ...(o.rate !== undefined ? { rate: o.rate } : {}) };
  for (const r of rows) {
    if (o.warmupSeconds > 0) {
      o.log(`warm-up: ${r.name}`);
      await runLoad({ ...base, name: `${r.name}-warmup`, base: r.base, requests: r.requests, seconds: o.warmupSeconds });
    }
  }
  const slices: Slice[][] = rows.map(() => []);
  for (let round = 1; round <= o.rounds; round++) {
    for (const [i, r] of rows.entries()) {
      o.log(`round ${round}/${o.rounds}: ${r.name}, ${o.sliceSeconds} s`);
      slices[i]!.push(await runMeasured({ ...base, name: `${r.name}-${round}`, base: r.base, requests: r.requests, seconds: o.sliceSeconds }, r.group));
    }
  }
  return slices;
}

/** The same, each row's slices together (`figures`). */
export async function measureGroup(rows: readonly Row[], o: GroupOptions): Promise<LoadFigures[]> {
  return (await measureGroupSlices(rows, o)).map(figures);
}
