/**
 * `npm run bench:access`: access decisions through one engine, each row beside its peer
 * measured in the same run, and how long a change takes to be enforced by every engine.
 *
 * Throughput rows (one console, one engine in inline mode: its runtime port has the sideband
 * doors, its proxy port the inline proxy):
 * - `/authz/forward` with a session cookie, with an ES256 JWT (both APIs check revocation
 *   and take a rate-limit token per request from a bucket too large to run dry) and with a
 *   session made by web sign-in (touch on; bench/access-sign-in.ts), beside a bare Fastify
 *   route answering 200 with an empty body (bench/peer-fastify.ts);
 * - the inline proxy with a session cookie in front of a small upstream (bench/upstream.ts),
 *   beside the same @fastify/reply-from proxy without a decision (bench/peer-proxy.ts) and
 *   nginx `proxy_pass` (one worker, keep-alive to the upstream) to the same upstream, when
 *   nginx is installed.
 * Load comes from a separate process (bench/load-runner.ts): wrk with a generated Lua script
 * that cycles through the credentials, or autocannon in a child process when wrk is missing.
 * The latency the inline proxy's decision adds is taken apart from its throughput: both
 * proxies again, at one fixed rate (`--paced-share` of what the slower of the two answered at
 * full speed; bench/paced-load.ts), since at full speed the slower one's queues are longer by
 * its throughput alone.
 * Rows take turns: after a warm-up of each, `--rounds` rounds run every row of a group for
 * `--seconds / --rounds` each, so a change in the machine's load hits a row and its peer
 * alike; a row's figures are its slices together (bench/quantiles.ts). Each row also gets
 * the CPU time its serving processes spent per request (from /proc): on a busy machine,
 * where throughput says as much about the other processes as about the row, the ratio of CPU
 * per request says what the row would reach beside its peer were both held back by their own
 * work alone.
 *
 * Enforcement rows (two more engines join): `--changes` times each, the time from the
 * acknowledgement of a revocation (`POST /runtime/v1/revocations` through one engine), a
 * session's deletion, or a deny-list save on the console, to the first deny answered by every
 * engine, each engine polled by the bench process at `/authz/forward` in a loop of one request
 * at a time. Before each change every engine has allowed the request (so the session is in
 * every engine's cache).
 *
 * Every process runs in its own process group on loopback ports from the OS and is killed when
 * the bench ends. Usage: node dist/bench/access.js [--seconds 9] [--rounds 3] [--warmup 2]
 *   [--connections 50] [--threads 2] [--credentials 1000] [--changes 100] [--engines 3]
 *   [--load wrk|autocannon] [--paced-share 0.5] [--profile DIR] [--json]
 * `--profile DIR` runs engine 1 with --cpu-prof and writes its CPU profile into DIR.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { freePort } from '../src/cli/free-port.js';
import { signInApi, signInSessions, SIGN_IN_PREFIX, startBenchIssuer } from './access-sign-in.js';
import { benchNodeConfig, removeAtExit, spawnGrouped, spawnProcess, startBenchNode, stopBenchNode, waitReady, type BenchNode } from './nodes.js';
import { defaultLoadTool, measureGroup, type GroupOptions, type LoadFigures, type LoadRequest, type LoadTool } from './load-runner.js';

const PEER = fileURLToPath(new URL('./peer-fastify.js', import.meta.url));
const PEER_PROXY = fileURLToPath(new URL('./peer-proxy.js', import.meta.url));
const UPSTREAM = fileURLToPath(new URL('./upstream.js', import.meta.url));
const NGINX = process.env.COHORT_TEST_NGINX ?? '/usr/sbin/nginx';
const API_KEY = 'bench-access-api-key-0123456789ab';
const ISSUER = 'https://issuer.bench.test';
const AUDIENCE = 'bench-api';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '9' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '2' },
    credentials: { type: 'string', default: '1000' },
    changes: { type: 'string', default: '100' },
    engines: { type: 'string', default: '3' },
    'paced-share': { type: 'string', default: '0.5' },
    load: { type: 'string', default: defaultLoadTool() },
    profile: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Math.max(1, Number(args.rounds));
/** wrk takes whole seconds. */
const SLICE_SECONDS = Math.max(1, Math.round(Number(args.seconds) / ROUNDS));
const WARMUP_SECONDS = Number(args.warmup);
const CONNECTIONS = Number(args.connections);
const THREADS = Math.min(Number(args.threads), CONNECTIONS);
const CREDENTIALS = Number(args.credentials);
const CHANGES = Number(args.changes);
const ENGINES = Math.max(1, Number(args.engines));
/** The inline rows' fixed rate, as a share of what the slower of the two answered at full speed. */
const PACED_SHARE = Number(args['paced-share']);
if (!(PACED_SHARE > 0 && PACED_SHARE <= 1)) throw new Error('--paced-share: a number above 0 and at most 1');
if (args.load !== 'wrk' && args.load !== 'autocannon') throw new Error('--load: wrk or autocannon');

function log(text: string): void {
  process.stderr.write(`bench:access: ${text}\n`);
}

/** Where the load runs write their scripts, and how each group of rows takes turns. */
function groupOptions(dir: string): GroupOptions {
  return { tool: args.load as LoadTool, dir, connections: CONNECTIONS, threads: THREADS, warmupSeconds: WARMUP_SECONDS, rounds: ROUNDS, sliceSeconds: SLICE_SECONDS, log };
}

/** GET `path` with each header set in turn. */
function cycle(path: string, headers: ReadonlyArray<Record<string, string>>): LoadRequest[] {
  return headers.map((h) => ({ path, headers: h }));
}

async function call(url: string, method: string, headers: Record<string, string>, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${url}: ${r.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** Headers of a forward-auth sub-request for GET `uri` from `client`, as nginx sends them. */
function forwardHeaders(uri: string, client: string, credential: Record<string, string>): Record<string, string> {
  return { 'X-Cohort-Key': API_KEY, 'X-Forwarded-Method': 'GET', 'X-Forwarded-Uri': uri, 'X-Forwarded-Host': 'shop.bench.test', 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': client, ...credential };
}

/** Asks `url` with `headers` until it answers `status` (the configuration reaches engines a little after a save). */
async function waitForStatus(url: string, headers: Record<string, string>, status: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const r = await fetch(url, { headers });
    await r.arrayBuffer();
    if (r.status === status) return;
    if (performance.now() > deadline) throw new Error(`${what}: still ${r.status} ${r.headers.get('x-cohort-reason')} after ${timeoutMs} ms`);
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 20));
  }
}

/** nginx `proxy_pass` to the upstream: one worker, keep-alive connections to the upstream, no logging. */
async function startNginx(dir: string, upstreamPort: number): Promise<{ url: string; group: number } | undefined> {
  if (!existsSync(NGINX)) {
    log(`*** nginx not found at ${NGINX}: the nginx row is skipped (apt-get install nginx) ***`);
    return undefined;
  }
  const prefix = join(dir, 'nginx');
  mkdirSync(prefix, { recursive: true });
  const port = await freePort();
  const conf = [
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '    access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `    ${k}_temp_path ${join(prefix, `${k}_temp`)};`),
    `    upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }`,
    '    server {',
    `        listen 127.0.0.1:${port};`,
    '        location / {',
    '            proxy_pass http://app;',
    '            proxy_http_version 1.1;',
    '            proxy_set_header Connection "";',
    '            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        }',
    '    }',
    '}',
    '',
  ].join('\n');
  const confFile = join(prefix, 'nginx.conf');
  writeFileSync(confFile, conf);
  const child = spawnGrouped(NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', confFile, '-g', 'daemon off;'], ['ignore', 'ignore', 'inherit']);
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + 10_000;
  for (;;) {
    try {
      const r = await fetch(`${url}/orders/0`);
      await r.arrayBuffer();
      if (r.status === 200) return { url, group: child.pid! };
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`nginx did not answer: ${readFileSync(join(prefix, 'error.log'), 'utf8')}`);
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 50));
  }
}

/** Times of one kind of change: ms from acknowledgement to the last engine's first deny. */
export interface EnforcementFigures {
  changes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The median time of one poll (the resolution of the figures). */
  pollP50Ms: number;
}

/** The peer's CPU time per request over the row's: the row's throughput as a share of the peer's, were both CPU-bound. */
function cpuRatio(peer: LoadFigures, row: LoadFigures): number | null {
  return peer.cpuUsPerRequest === null || row.cpuUsPerRequest === null || row.cpuUsPerRequest === 0 ? null : peer.cpuUsPerRequest / row.cpuUsPerRequest;
}

function percentileOf(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * Polls every engine's door with `headers` (one request at a time each) from before `change`
 * until each has denied once; resolves with the time from `change`'s acknowledgement to the
 * last engine's first deny (0 when every engine denied before the acknowledgement arrived).
 */
async function timeToDenial(runtimes: readonly string[], headers: Record<string, string>, change: () => Promise<void>, pollTimes: number[]): Promise<number> {
  let ackAt: number | undefined;
  let stop = false;
  const firstDeny = runtimes.map(async (runtime) => {
    while (!stop) {
      const sent = performance.now();
      const r = await fetch(`${runtime}/authz/forward`, { headers });
      await r.arrayBuffer();
      const at = performance.now();
      pollTimes.push(at - sent);
      if (r.status !== 200) return at;
    }
    return Infinity;
  });
  const timeout = setTimeout(() => (stop = true), 30_000);
  try {
    await change();
    ackAt = performance.now();
    const denied = await Promise.all(firstDeny);
    if (denied.some((t) => t === Infinity)) throw new Error('an engine still allowed 30 s after the change');
    return Math.max(0, Math.max(...denied) - ackAt);
  } finally {
    stop = true;
    clearTimeout(timeout);
  }
}

function enforcementFigures(times: number[], pollTimes: number[]): EnforcementFigures {
  const sorted = [...times].sort((a, b) => a - b);
  const polls = [...pollTimes].sort((a, b) => a - b);
  return { changes: sorted.length, p50Ms: percentileOf(sorted, 50), p99Ms: percentileOf(sorted, 99), maxMs: sorted[sorted.length - 1] ?? NaN, pollP50Ms: percentileOf(polls, 50) };
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cohort-bench-access-'));
  removeAtExit(base);
  const profileDir = args.profile === undefined ? undefined : resolve(args.profile);
  if (profileDir) mkdirSync(profileDir, { recursive: true });

  const upstreamPort = await freePort();
  await spawnProcess([UPSTREAM, String(upstreamPort)], /upstream started/);
  const upstream = `http://127.0.0.1:${upstreamPort}`;

  log('starting a console and an engine (inline mode: the doors on the runtime port, the proxy on its own)');
  const inline = { node: ['mode = inline'] };
  const consoleNode = await benchNodeConfig(base, 'console', 'console', '', inline);
  await startBenchNode(consoleNode);
  const engineConfig = async (id: string): Promise<BenchNode & { proxy: string }> => {
    const proxy = `127.0.0.1:${await freePort()}`;
    const n = await benchNodeConfig(base, id, 'engine', consoleNode.cluster, { ...inline, http: [`api_keys = ${API_KEY}`, `proxy = ${proxy}`] });
    return { ...n, proxy };
  };
  const engine = await engineConfig('engine-1');
  await startBenchNode(engine, profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
  await waitReady(engine, 120_000);

  // ---- the configuration, through the console's admin API
  const admin = `http://${consoleNode.admin}`;
  const password = readFileSync(join(consoleNode.dir, 'admin-password'), 'utf8').trim();
  const { token } = (await call(`${admin}/admin/v1/login`, 'POST', {}, { user: 'admin', password })) as { token: string };
  const asAdmin = { authorization: `Bearer ${token}` };
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' };
  // A bucket no run can empty: every request takes a token, none is denied.
  await call(`${admin}/admin/v1/config/runtime`, 'PUT', asAdmin, { rateLimits: { bench: { capacity: 1_000_000_000, refillPerSecond: 1_000_000_000 } } });
  const rateLimit = { policy: 'bench', by: 'subject' };
  const issuer = await startBenchIssuer();
  const apis = (denyList: string[]) => ({
    apis: [
      { id: 'orders', pathPrefix: '/orders', credentials: ['session'], checkRevocation: true, rateLimit, upstream, ...(denyList.length > 0 ? { denyList } : {}) },
      { id: 'reports', pathPrefix: '/reports', credentials: ['jwt'], jwt: { issuer: ISSUER, audiences: [AUDIENCE], keys: [jwk], algorithms: ['ES256'] }, checkRevocation: true, rateLimit },
      signInApi(issuer, rateLimit),
    ],
  });
  await call(`${admin}/admin/v1/config/apis`, 'PUT', asAdmin, apis([]));

  // ---- credentials
  log(`creating ${CREDENTIALS} sessions and signing ${CREDENTIALS} ES256 tokens`);
  const runtime = `http://${engine.runtime}`;
  const createSession = async (via: string, subject: string): Promise<string> =>
    (await call(`${via}/runtime/v1/sessions`, 'POST', { authorization: `Bearer ${API_KEY}` }, { subject, attributes: { role: 'member' } })).id as string;
  const sessionIds: string[] = [];
  for (let i = 0; i < CREDENTIALS; i += 50) sessionIds.push(...(await Promise.all(Array.from({ length: Math.min(50, CREDENTIALS - i) }, (_, k) => createSession(runtime, `user-${i + k}`)))));
  const tokens = await Promise.all(Array.from({ length: CREDENTIALS }, (_, i) => new SignJWT({ email: `user-${i}@bench.test` })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .setIssuer(ISSUER).setAudience(AUDIENCE).setSubject(`user-${i}`).setJti(`jti-${i}`)
    .setIssuedAt().setExpirationTime('1h')
    .sign(privateKey)));
  const sessionHeaders = sessionIds.map((id, i) => forwardHeaders(`/orders/${i}`, `192.0.2.${i % 250 + 1}`, { Cookie: `cohort_session=${id}` }));
  const jwtHeaders = tokens.map((t, i) => forwardHeaders(`/reports/${i}`, `192.0.2.${i % 250 + 1}`, { Authorization: `Bearer ${t}` }));
  const cookieHeaders = sessionIds.map((id) => ({ Cookie: `cohort_session=${id}` }));

  await waitForStatus(`${runtime}/authz/forward`, sessionHeaders[0]!, 200, 'the session API');
  await waitForStatus(`${runtime}/authz/forward`, jwtHeaders[0]!, 200, 'the JWT API');
  await waitForStatus(`http://${engine.proxy}/orders/0`, cookieHeaders[0]!, 200, 'the inline proxy');

  // Sessions from web sign-in (bench/access-sign-in.ts): a provider round trip each, so fewer.
  const signInCount = Math.min(CREDENTIALS, 200);
  log(`signing in ${signInCount} users through /authz/forward?redirect=true`);
  const signInIds = await signInSessions(runtime, issuer, signInCount, (uri, credential) => forwardHeaders(uri, '192.0.2.1', credential));
  const signInHeaders = signInIds.map((id, i) => forwardHeaders(`${SIGN_IN_PREFIX}/${i}`, `192.0.2.${i % 250 + 1}`, { Cookie: `cohort_session=${id}` }));

  const peerPort = await freePort();
  const peer = await spawnProcess([PEER, String(peerPort)], /peer started/);
  const peerProxyPort = await freePort();
  const peerProxy = await spawnProcess([PEER_PROXY, String(peerProxyPort), upstream], /peer started/);
  const engineGroup = engine.child!.pid!;
  const nginx = await startNginx(base, upstreamPort);

  log(`sideband rows, ${CONNECTIONS} connections, ${ROUNDS} x ${SLICE_SECONDS} s each (${args.load})`);
  const [fastify, session, jwt, signedIn] = await measureGroup([
    { name: 'fastify', base: `http://127.0.0.1:${peerPort}`, requests: cycle('/authz/forward', sessionHeaders), group: peer.pid! },
    { name: 'session', base: runtime, requests: cycle('/authz/forward', sessionHeaders), group: engineGroup },
    { name: 'jwt', base: runtime, requests: cycle('/authz/forward', jwtHeaders), group: engineGroup },
    { name: 'sign-in', base: runtime, requests: cycle('/authz/forward', signInHeaders), group: engineGroup },
  ], groupOptions(base)) as [LoadFigures, LoadFigures, LoadFigures, LoadFigures];
  log('inline rows');
  const inlineRows = [
    { name: 'reply-from', base: `http://127.0.0.1:${peerProxyPort}`, requests: cycle('/orders/1', cookieHeaders), group: peerProxy.pid! },
    { name: 'inline', base: `http://${engine.proxy}`, requests: cycle('/orders/1', cookieHeaders), group: engineGroup },
    ...(nginx ? [{ name: 'nginx', base: nginx.url, requests: cycle('/orders/1', cookieHeaders), group: nginx.group }] : []),
  ];
  const [replyFrom, inlineProxy, nginxProxy] = await measureGroup(inlineRows, groupOptions(base)) as [LoadFigures, LoadFigures, LoadFigures | undefined];
  // The latency the decision adds, taken with both proxies at the same load: a share of what
  // the slower of the two answered at full speed (at full speed the slower server's queues are
  // longer by its throughput alone).
  const pacedRate = Math.max(1, Math.round(Math.min(replyFrom.rps, inlineProxy.rps) * PACED_SHARE));
  log(`inline rows at a fixed rate of ${pacedRate} req/s`);
  const [pacedReplyFrom, pacedInline] = await measureGroup(inlineRows.slice(0, 2), { ...groupOptions(base), warmupSeconds: 0, rate: pacedRate }) as [LoadFigures, LoadFigures];
  if (profileDir) {
    await stopBenchNode(engine);
    log(`engine-1's CPU profile is in ${profileDir}`);
  }

  // ---- enforcement: every engine, from a change's acknowledgement to its first deny
  let enforcement: { engines: number; revocation: EnforcementFigures; deletion: EnforcementFigures; denyList: EnforcementFigures } | undefined;
  if (CHANGES > 0 && !profileDir) {
    const engines = [engine];
    for (let i = 2; i <= ENGINES; i++) {
      const e = await engineConfig(`engine-${i}`);
      await startBenchNode(e);
      engines.push(e);
    }
    for (const e of engines) await waitReady(e, 120_000);
    const runtimes = engines.map((e) => `http://${e.runtime}`);
    log(`${ENGINES} engines: ${CHANGES} revocations, ${CHANGES} deletions, ${CHANGES} deny-list saves`);
    const pollTimes: number[] = [];
    const asKey = { authorization: `Bearer ${API_KEY}` };
    const sessionTimes = async (change: (id: string, via: string) => Promise<void>): Promise<number[]> => {
      const times: number[] = [];
      for (let i = 0; i < CHANGES; i++) {
        const id = await createSession(runtimes[i % runtimes.length]!, `changed-${i}`);
        const headers = forwardHeaders('/orders/1', '192.0.2.1', { Cookie: `cohort_session=${id}` });
        // Every engine has allowed it (and holds it in its cache) before the change.
        for (const r of runtimes) await waitForStatus(`${r}/authz/forward`, headers, 200, `session ${id} on ${r}`);
        times.push(await timeToDenial(runtimes, headers, () => change(id, runtimes[(i + 2) % runtimes.length]!), pollTimes));
      }
      return times;
    };
    const revocationTimes = await sessionTimes(async (id, via) => void (await call(`${via}/runtime/v1/revocations`, 'POST', asKey, { id })));
    const revocation = enforcementFigures(revocationTimes, pollTimes);
    pollTimes.length = 0;
    const deletionTimes = await sessionTimes(async (id, via) => void (await call(`${via}/runtime/v1/sessions/${encodeURIComponent(id)}`, 'DELETE', asKey)));
    const deletion = enforcementFigures(deletionTimes, pollTimes);
    pollTimes.length = 0;
    const denied: string[] = [];
    const denyTimes: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const address = `198.51.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`;
      const headers = forwardHeaders('/orders/1', address, { Cookie: `cohort_session=${sessionIds[i % sessionIds.length]!}` });
      for (const r of runtimes) await waitForStatus(`${r}/authz/forward`, headers, 200, `address ${address} on ${r}`);
      denied.push(`ip:${address}`);
      denyTimes.push(await timeToDenial(runtimes, headers, async () => void (await call(`${admin}/admin/v1/config/apis`, 'PUT', asAdmin, apis(denied))), pollTimes));
    }
    const denyList = enforcementFigures(denyTimes, pollTimes);
    enforcement = { engines: ENGINES, revocation, deletion, denyList };
  }

  const results = {
    load: args.load, connections: CONNECTIONS, rounds: ROUNDS, sliceSeconds: SLICE_SECONDS, warmupSeconds: WARMUP_SECONDS, credentials: CREDENTIALS,
    fastify, session, jwt, signedIn, replyFrom, inline: inlineProxy, nginx: nginxProxy ?? null,
    sessionRatio: session.rps / fastify.rps,
    jwtRatio: jwt.rps / fastify.rps,
    signedInRatio: signedIn.rps / fastify.rps,
    inlineRatio: inlineProxy.rps / replyFrom.rps,
    paced: { rate: pacedRate, replyFrom: pacedReplyFrom, inline: pacedInline },
    /** The inline proxy's p99 over the peer's, both at the fixed rate. */
    inlineAddedP99Ms: pacedInline.p99Ms - pacedReplyFrom.p99Ms,
    /** The same at full speed (50 connections each): mostly the difference in throughput. */
    inlineSaturatedAddedP99Ms: inlineProxy.p99Ms - replyFrom.p99Ms,
    // What the ratios would be if every row were held back by its own CPU time alone.
    sessionCpuRatio: cpuRatio(fastify, session),
    jwtCpuRatio: cpuRatio(fastify, jwt),
    inlineCpuRatio: cpuRatio(replyFrom, inlineProxy),
    enforcement: enforcement ?? null,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  const ms = (v: number): string => `${v.toFixed(2)} ms`;
  const pct = (v: number): string => `${(v * 100).toFixed(0)}%`;
  const cpu = (f: LoadFigures): string => (f.cpuUsPerRequest === null ? 'n/a' : `${f.cpuUsPerRequest.toFixed(0)} µs`);
  const row = (name: string, f: LoadFigures, ratio: string, target: string): string =>
    `| ${name} | ${f.rps.toFixed(0)} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${f.errors} | ${ratio} | ${cpu(f)} | ${target} |`;
  const met = (ok: boolean): string => (ok ? 'met' : 'not met');
  const byCpu = (ratio: number | null): string => (ratio === null ? '' : `; by CPU per request ${pct(ratio)}`);
  const lines = [
    `| ${CONNECTIONS} connections, ${ROUNDS} x ${SLICE_SECONDS} s, ${args.load} | req/s | p50 | p99 | errors | of peer | CPU per request | target |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    row('bare Fastify, 200 with an empty body', fastify, '100%', ''),
    row('/authz/forward, session cookie', session, pct(results.sessionRatio), `≥ 70% and p99 < 5 ms: ${met(results.sessionRatio >= 0.7 && session.p99Ms < 5)}${byCpu(results.sessionCpuRatio)}`),
    row('/authz/forward, ES256 JWT', jwt, pct(results.jwtRatio), `≥ 50%: ${met(results.jwtRatio >= 0.5)}${byCpu(results.jwtCpuRatio)}`),
    row('/authz/forward, session cookie from web sign-in (touch on)', signedIn, pct(results.signedInRatio), `beside the session row: ${pct(signedIn.rps / session.rps)} of it`),
    row('@fastify/reply-from proxy, no decision', replyFrom, '100%', ''),
    row('inline proxy, session cookie', inlineProxy, pct(results.inlineRatio), `≥ 70%: ${met(results.inlineRatio >= 0.7)}${byCpu(results.inlineCpuRatio)}; p99 ${ms(results.inlineSaturatedAddedP99Ms)} over the peer's`),
    nginxProxy ? row('nginx proxy_pass, no decision', nginxProxy, pct(nginxProxy.rps / replyFrom.rps), '') : `| nginx proxy_pass, no decision | skipped: no nginx at ${NGINX} | | | | | | |`,
    '',
    `| ${pacedRate} req/s each (${pct(PACED_SHARE)} of the slower's full speed), ${CONNECTIONS} connections, ${ROUNDS} x ${SLICE_SECONDS} s | req/s | p50 | p99 | errors | added p99 | target |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    `| @fastify/reply-from proxy, no decision | ${pacedReplyFrom.rps.toFixed(0)} | ${ms(pacedReplyFrom.p50Ms)} | ${ms(pacedReplyFrom.p99Ms)} | ${pacedReplyFrom.errors} | | |`,
    `| inline proxy, session cookie | ${pacedInline.rps.toFixed(0)} | ${ms(pacedInline.p50Ms)} | ${ms(pacedInline.p99Ms)} | ${pacedInline.errors} | ${ms(results.inlineAddedP99Ms)} | < 2 ms: ${met(results.inlineAddedP99Ms < 2)} |`,
  ];
  if (enforcement) {
    const e = enforcement;
    const erow = (name: string, f: EnforcementFigures): string =>
      `| ${name} | ${f.changes} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${ms(f.maxMs)} | ${ms(f.pollP50Ms)} | < 200 ms: ${met(f.p99Ms < 200)} |`;
    lines.push(
      '',
      `| change → denied by every engine (${e.engines} engines) | changes | p50 | p99 | max | one poll (p50) | target |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
      erow('revocation (POST /runtime/v1/revocations)', e.revocation),
      erow('session deleted (DELETE /runtime/v1/sessions/{id})', e.deletion),
      erow('deny-list save on the console (PUT /admin/v1/config/apis)', e.denyList),
    );
  }
  const summary = [
    `bench:access: forward-session ${session.rps.toFixed(0)}/s (${results.sessionRatio.toFixed(2)} of fastify) forward-jwt ${jwt.rps.toFixed(0)}/s (${results.jwtRatio.toFixed(2)}) fastify ${fastify.rps.toFixed(0)}/s`,
    `inline ${inlineProxy.rps.toFixed(0)}/s (${results.inlineRatio.toFixed(2)} of reply-from, p99 +${results.inlineAddedP99Ms.toFixed(2)} ms at ${pacedRate}/s) reply-from ${replyFrom.rps.toFixed(0)}/s nginx ${nginxProxy ? `${nginxProxy.rps.toFixed(0)}/s` : 'skipped'}`,
    ...(enforcement ? [`revocation p99 ${enforcement.revocation.p99Ms.toFixed(1)} ms deletion p99 ${enforcement.deletion.p99Ms.toFixed(1)} ms deny-list p99 ${enforcement.denyList.p99Ms.toFixed(1)} ms`] : []),
  ].join(' ');
  lines.push(summary, '');
  process.stdout.write(lines.join('\n'));
}

main().then(
  // The nodes it started are still running: the exit handler kills their process groups.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:access failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
