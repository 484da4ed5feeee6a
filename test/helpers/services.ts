/**
 * External services for integration tests (PostgreSQL, Redis).
 *
 * A test that needs one asks for its URL: when the service is down the test is skipped with
 * a loud notice on stderr, or fails when COHORT_REQUIRE_SERVICES=1 (CI sets it, so a missing
 * service can never turn a run green by skipping). Each service is probed once per process.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import pg from 'pg';

const PROBE_TIMEOUT_MS = 2000;

export const TEST_POSTGRES_URL = process.env.COHORT_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.COHORT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The PostgreSQL URL, or undefined after skipping `t` when PostgreSQL is down. */
export function postgresUrlOrSkip(t: TestContext): Promise<string | undefined> {
  return serviceOrSkip(t, 'PostgreSQL', TEST_POSTGRES_URL, probePostgres);
}

/** The Redis URL, or undefined after skipping `t` when nothing answers PING there. */
export function redisUrlOrSkip(t: TestContext): Promise<string | undefined> {
  return serviceOrSkip(t, 'Redis', TEST_REDIS_URL, probeRedis);
}

/**
 * True when redis-server (7.0 or later) and redis-cli can be run here, for tests that start
 * their own Redis Cluster or Sentinel set (redis-servers.ts); else `t` is skipped (loudly, or
 * failed with COHORT_REQUIRE_SERVICES=1). A suite's `before` hook passes its own `skip`.
 */
export async function redisBinariesOrSkip(t: Pick<TestContext, 'skip'>): Promise<boolean> {
  const { redisBinariesMissing, REDIS_SERVER } = await import('./redis-servers.js');
  const found = await serviceOrSkip(t, 'redis-server and redis-cli', REDIS_SERVER, async () => {
    const missing = redisBinariesMissing();
    if (missing !== undefined) throw new Error(missing);
  });
  return found !== undefined;
}

export interface TestSchema {
  /** `baseUrl` with `?schema=` naming a fresh schema (created by the repository's migrate). */
  url: string;
  schema: string;
  /** Drops the schema and everything in it. */
  dropSchema: () => Promise<void>;
}

/** A uniquely named schema, so concurrent test runs on one database never see each other. */
export function uniquePostgresSchemaUrl(baseUrl: string): TestSchema {
  const schema = `cohort_test_${randomBytes(6).toString('hex')}`;
  const url = new URL(baseUrl);
  url.searchParams.set('schema', schema);
  return {
    url: url.toString(),
    schema,
    dropSchema: async () => {
      await withPostgres(baseUrl, (c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
    },
  };
}

/** Runs `fn` on a fresh connection to `url`, closing it afterwards. */
export async function withPostgres<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Per URL: undefined when the service answered, else why not. */
const probes = new Map<string, Promise<string | undefined>>();

/**
 * `url` when `probe` succeeds (once per process for each `url`); otherwise skips `t` with a
 * loud notice, or throws under COHORT_REQUIRE_SERVICES=1. For services and facilities of the
 * machine alike (network namespaces: test/helpers/netns.ts, which says `not permitted` rather
 * than `unreachable`).
 */
export async function serviceOrSkip(
  t: Pick<TestContext, 'skip'>,
  name: string,
  url: string,
  probe: (url: string) => Promise<void>,
  missing = 'unreachable',
): Promise<string | undefined> {
  let result = probes.get(url);
  const firstAsk = result === undefined;
  if (result === undefined) {
    result = probe(url).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err.message : String(err)).trim(),
    );
    probes.set(url, result);
  }
  const down = await result;
  if (down === undefined) return url;
  if (process.env.COHORT_REQUIRE_SERVICES === '1') {
    throw new Error(`${name} at ${redact(url)} is required (COHORT_REQUIRE_SERVICES=1) but ${missing}: ${down}`);
  }
  if (firstAsk) {
    process.stderr.write(
      `\n*** SKIPPED: ${name} at ${redact(url)} ${missing} (${down}); ` +
        'set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n',
    );
  }
  t.skip(`${name} at ${redact(url)} ${missing}`);
  return undefined;
}

async function probePostgres(url: string): Promise<void> {
  await withPostgres(url, (c) => c.query('SELECT 1'));
}

function probeRedis(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) });
    let reply = '';
    const finish = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => finish(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('error', finish);
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (!reply.includes('\r\n')) return;
      // -NOAUTH still proves a Redis is there; the URL's credentials are the test's business.
      if (reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')) finish();
      else finish(new Error(`unexpected reply to PING: ${JSON.stringify(reply.trim())}`));
    });
    socket.on('close', () => finish(new Error('connection closed before a reply')));
  });
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url.includes('://') ? '(unparsable URL)' : url; // a file path (Chromium) is no secret
  }
}

export const TEST_CHROMIUM = process.env.COHORT_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** The flags every browser test launches Chromium with (headless, no network of its own). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Debian's Chromium, or undefined after skipping `t` when it is not installed (a suite's
 * `before` hook, which cannot skip, passes its own `skip` that marks the suite's tests).
 */
export function chromiumOrSkip(t: Pick<TestContext, 'skip'>): Promise<string | undefined> {
  return serviceOrSkip(t, 'Chromium', TEST_CHROMIUM, async (path) => {
    const { access, constants } = await import('node:fs/promises');
    await access(path, constants.X_OK);
  });
}
