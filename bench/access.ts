/**
 * `npm run bench:access`: forward-auth decisions through one engine, beside a bare Fastify
 * route measured in the same run.
 *
 * A console and one engine (`cohort start` processes) get, through the admin API, a `runtime`
 * section with a rate-limit policy whose bucket is too large to ever run dry, and an `apis`
 * document with two APIs that check revocation and take a rate-limit token per request: one
 * accepting sessions (cookie), one accepting ES256 JWTs checked against an inline key set,
 * and one with web sign-in whose sessions are made by signing in (bench/access-sign-in.ts).
 * The bench creates sessions and signs tokens, then drives `/authz/forward` from a separate
 * process — wrk with a generated Lua script that cycles through the credentials, or autocannon
 * in a child process (bench/access-load.ts) when wrk is missing — and the same load at a bare
 * Fastify route answering 200 with an empty body (bench/peer-fastify.ts, its own process).
 *
 * Every process runs in its own process group on loopback ports from the OS and is killed when
 * the bench ends. Usage: node dist/bench/access.js [--seconds 10] [--warmup 2] [--connections 50]
 *   [--threads 2] [--credentials 1000] [--load wrk|autocannon] [--json]
 */
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { freePort } from '../src/cli/free-port.js';
import { signInApi, signInSessions, SIGN_IN_PREFIX, startBenchIssuer } from './access-sign-in.js';
import { benchNodeConfig, killGroup, removeAtExit, spawnGrouped, spawnProcess, startBenchNode, waitReady, type BenchNode } from './nodes.js';

const PEER = fileURLToPath(new URL('./peer-fastify.js', import.meta.url));
const LOAD = fileURLToPath(new URL('./access-load.js', import.meta.url));
const WRK = '/usr/bin/wrk';
const API_KEY = 'bench-access-api-key-0123456789ab';
const ISSUER = 'https://issuer.bench.test';
const AUDIENCE = 'bench-api';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '2' },
    credentials: { type: 'string', default: '1000' },
    load: { type: 'string', default: existsSync(WRK) ? 'wrk' : 'autocannon' },
    json: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const WARMUP_SECONDS = Number(args.warmup);
const CONNECTIONS = Number(args.connections);
const THREADS = Math.min(Number(args.threads), CONNECTIONS);
const CREDENTIALS = Number(args.credentials);
if (args.load !== 'wrk' && args.load !== 'autocannon') throw new Error('--load: wrk or autocannon');

function log(text: string): void {
  process.stderr.write(`bench:access: ${text}\n`);
}

/** What one load run measured. */
export interface LoadFigures {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Connection errors, timeouts and answers other than 2xx/3xx. */
  errors: number;
  requests: number;
}

/** A Lua string literal (wrk's scripts are Lua). */
function lua(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
}

/**
 * wrk with a script that formats one request per header set at thread start (so that the
 * client spends its time sending, not building requests) and cycles through them; `done`
 * prints the figures as one JSON line.
 */
function wrkScript(path: string, headers: Array<Record<string, string>>): string {
  const sets = headers.map((h) => `{${Object.entries(h).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')}}`);
  return [
    `local sets = {\n${sets.join(',\n')}\n}`,
    'local requests = {}',
    'local i = 0',
    'init = function(args)',
    `  for k, h in ipairs(sets) do requests[k] = wrk.format("GET", ${lua(path)}, h) end`,
    // Threads start at different places, so that they do not ask for the same credential.
    '  i = math.random(#requests)',
    'end',
    'request = function()',
    '  i = i % #requests + 1',
    '  return requests[i]',
    'end',
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'WRK-FIGURES {"requests":%d,"durationUs":%d,"errors":%d,"p50Us":%d,"p99Us":%d}\\n\',',
    '    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,',
    '    latency:percentile(50), latency:percentile(99)))',
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

/**
 * Drives GET `path` at `base` from a separate process, one header set per request in turn:
 * first --warmup seconds whose figures are dropped (the server's code is compiled by then,
 * its pools filled), then --seconds measured.
 */
async function load(dir: string, name: string, base: string, path: string, headers: Array<Record<string, string>>): Promise<LoadFigures> {
  if (WARMUP_SECONDS > 0) await run(dir, `${name}-warmup`, base, path, headers, WARMUP_SECONDS);
  return run(dir, name, base, path, headers, SECONDS);
}

async function run(dir: string, name: string, base: string, path: string, headers: Array<Record<string, string>>, seconds: number): Promise<LoadFigures> {
  if (args.load === 'wrk') {
    const script = join(dir, `${name}.lua`);
    writeFileSync(script, wrkScript(path, headers));
    const child = spawnGrouped(WRK, ['-t', String(THREADS), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '5s', '-s', script, `${base}${path}`], ['ignore', 'pipe', 'inherit']);
    const out = await output(child, 'wrk');
    const line = out.split('\n').find((l) => l.startsWith('WRK-FIGURES '));
    if (!line) throw new Error(`wrk printed no figures: ${out}`);
    const f = JSON.parse(line.slice('WRK-FIGURES '.length)) as { requests: number; durationUs: number; errors: number; p50Us: number; p99Us: number };
    return { rps: f.requests / (f.durationUs / 1e6), p50Ms: f.p50Us / 1000, p99Ms: f.p99Us / 1000, errors: f.errors, requests: f.requests };
  }
  const job = join(dir, `${name}.json`);
  writeFileSync(job, JSON.stringify({ url: base, path, connections: CONNECTIONS, seconds, headers }));
  const out = await output(spawnGrouped(process.execPath, [LOAD, job], ['ignore', 'pipe', 'inherit']), 'autocannon');
  const f = JSON.parse(out.trim().split('\n').pop()!) as { requests: number; seconds: number; errors: number; p50Ms: number; p99Ms: number };
  return { rps: f.requests / f.seconds, p50Ms: f.p50Ms, p99Ms: f.p99Ms, errors: f.errors, requests: f.requests };
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

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cohort-bench-access-'));
  removeAtExit(base);

  log('starting a console and an engine');
  const consoleNode = await benchNodeConfig(base, 'console', 'console', '');
  await startBenchNode(consoleNode);
  const engine: BenchNode = await benchNodeConfig(base, 'engine-1', 'engine', consoleNode.cluster, { http: [`api_keys = ${API_KEY}`] });
  await startBenchNode(engine);
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
  await call(`${admin}/admin/v1/config/apis`, 'PUT', asAdmin, {
    apis: [
      { id: 'orders', pathPrefix: '/orders', credentials: ['session'], checkRevocation: true, rateLimit },
      { id: 'reports', pathPrefix: '/reports', credentials: ['jwt'], jwt: { issuer: ISSUER, audiences: [AUDIENCE], keys: [jwk], algorithms: ['ES256'] }, checkRevocation: true, rateLimit },
      signInApi(issuer, rateLimit),
    ],
  });

  // ---- credentials
  log(`creating ${CREDENTIALS} sessions and signing ${CREDENTIALS} ES256 tokens`);
  const runtime = `http://${engine.runtime}`;
  const sessionIds: string[] = [];
  for (let i = 0; i < CREDENTIALS; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, CREDENTIALS - i) }, (_, k) => call(`${runtime}/runtime/v1/sessions`, 'POST', { authorization: `Bearer ${API_KEY}` }, { subject: `user-${i + k}`, attributes: { role: 'member' } })));
    sessionIds.push(...batch.map((s) => s.id as string));
  }
  const tokens = await Promise.all(Array.from({ length: CREDENTIALS }, (_, i) => new SignJWT({ email: `user-${i}@bench.test` })
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .setIssuer(ISSUER).setAudience(AUDIENCE).setSubject(`user-${i}`).setJti(`jti-${i}`)
    .setIssuedAt().setExpirationTime('1h')
    .sign(privateKey)));
  const sessionHeaders = sessionIds.map((id, i) => forwardHeaders(`/orders/${i}`, `192.0.2.${i % 250 + 1}`, { Cookie: `cohort_session=${id}` }));
  const jwtHeaders = tokens.map((t, i) => forwardHeaders(`/reports/${i}`, `192.0.2.${i % 250 + 1}`, { Authorization: `Bearer ${t}` }));

  // The document reaches the engine a few milliseconds after the save: wait for both APIs.
  for (const [what, headers] of [['session', sessionHeaders[0]!], ['jwt', jwtHeaders[0]!]] as const) {
    const deadline = performance.now() + 30_000;
    for (;;) {
      const r = await fetch(`${runtime}/authz/forward`, { headers });
      await r.arrayBuffer();
      if (r.status === 200) break;
      if (performance.now() > deadline) throw new Error(`the ${what} API never allowed: ${r.status} ${r.headers.get('x-cohort-reason')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  // Sessions from web sign-in (bench/access-sign-in.ts): a provider round trip each, so fewer.
  const signInCount = Math.min(CREDENTIALS, 200);
  log(`signing in ${signInCount} users through /authz/forward?redirect=true`);
  const signInIds = await signInSessions(runtime, issuer, signInCount, (uri, credential) => forwardHeaders(uri, '192.0.2.1', credential));
  const signInHeaders = signInIds.map((id, i) => forwardHeaders(`${SIGN_IN_PREFIX}/${i}`, `192.0.2.${i % 250 + 1}`, { Cookie: `cohort_session=${id}` }));

  const peerPort = await freePort();
  const peer = await spawnProcess([PEER, String(peerPort)], /peer started/);

  log(`bare Fastify, ${CONNECTIONS} connections, ${SECONDS} s (${args.load})`);
  const fastify = await load(base, 'fastify', `http://127.0.0.1:${peerPort}`, '/authz/forward', sessionHeaders);
  // The peer's process would otherwise take CPU from the engine's runs on a small machine.
  killGroup(peer);
  log('/authz/forward with a session cookie');
  const session = await load(base, 'session', runtime, '/authz/forward', sessionHeaders);
  log('/authz/forward with an ES256 JWT');
  const jwt = await load(base, 'jwt', runtime, '/authz/forward', jwtHeaders);
  log('/authz/forward with a session cookie from web sign-in');
  const signedIn = await load(base, 'sign-in', runtime, '/authz/forward', signInHeaders);

  const results = {
    load: args.load, connections: CONNECTIONS, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, credentials: CREDENTIALS,
    fastify, session, jwt, signedIn,
    sessionRatio: session.rps / fastify.rps,
    signedInRatio: signedIn.rps / fastify.rps,
    jwtRatio: jwt.rps / fastify.rps,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  const ms = (v: number): string => `${v.toFixed(2)} ms`;
  const pct = (v: number): string => `${(v * 100).toFixed(0)}%`;
  const row = (name: string, f: LoadFigures, ratio: string, target: string): string =>
    `| ${name} | ${f.rps.toFixed(0)} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${f.errors} | ${ratio} | ${target} |`;
  process.stdout.write([
    `| ${CONNECTIONS} connections, ${SECONDS} s, ${args.load} | req/s | p50 | p99 | errors | of Fastify | target |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    row('bare Fastify, 200 with an empty body', fastify, '100%', ''),
    row('/authz/forward, session cookie', session, pct(results.sessionRatio), `≥ 70% and p99 < 5 ms: ${results.sessionRatio >= 0.7 && session.p99Ms < 5 ? 'met' : 'not met'}`),
    row('/authz/forward, ES256 JWT', jwt, pct(results.jwtRatio), `≥ 50%: ${results.jwtRatio >= 0.5 ? 'met' : 'not met'}`),
    row('/authz/forward, session cookie from web sign-in (touch on)', signedIn, pct(results.signedInRatio), `beside the session row: ${(signedIn.rps / session.rps * 100).toFixed(0)}% of it`),
    `bench:access: forward-session ${session.rps.toFixed(0)}/s (${results.sessionRatio.toFixed(2)} of fastify) forward-jwt ${jwt.rps.toFixed(0)}/s (${results.jwtRatio.toFixed(2)}) fastify ${fastify.rps.toFixed(0)}/s`,
    '',
  ].join('\n'));
}

main().then(
  // The nodes it started are still running: the exit handler kills their process groups.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:access failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
