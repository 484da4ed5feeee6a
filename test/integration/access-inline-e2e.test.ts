/**
 * Inline mode on real processes: `cohort up --mode inline --engines 2` gives every engine a
 * proxy, and the engines' proxy ports are the front door. The allow and deny cases of the
 * sideband doors, through the proxy: no credential → 401; a session created through engine 1
 * passes engine 2's proxy and the upstream sees the identity headers (not the forged ones);
 * the session revoked through engine 1 is refused at engine 2's proxy; a deny-listed address
 * (the client behind a trusted balancer, `[http] trusted_proxies` from the environment) is
 * refused; a rate-limited API answers 429 with Retry-After; the same API in monitor mode
 * passes with X-Cohort-Would-Deny; a 10 MB upload reaches the upstream intact (SHA-256
 * compared), streamed; an upstream that hangs gives 504 PROXY_UPSTREAM_TIMEOUT after the
 * API's timeoutMs. Times from acknowledgement to refusal are printed, not asserted. First of
 * all, the curl `cohort up` printed through engine-1's proxy, pasted into a shell, answers as
 * printed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { waitUntil } from '../helpers/cluster.js';
import { binaryOrSkip } from '../helpers/external-proxies.js';
import { CURL, pasteCurl, printedExample } from '../helpers/front-door.js';
import { runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
  bytes: number;
  sha256: string;
}

const UPLOAD_BYTES = 10 * 1024 * 1024;
/** The hanging API's timeoutMs. The proxy's client (undici) keeps header timeouts on timers accurate to about 500 ms. */
const TIMEOUT_MS = 1500;
const TIMER_ACCURACY_MS = 500;

describe('cohort up --mode inline', () => {
  it('the proxy ports decide like the doors (401, session with identity, revoked on another engine, deny list, 429, monitor mode), stream a 10 MB upload intact and give 504 for a hanging upstream', async (t) => {
    const seen: Seen[] = [];
    const upstream = createServer((req, res) => {
      if (req.url!.startsWith('/hang')) return; // never answers
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => {
        seen.push({ url: req.url!, headers: req.headers, bytes, sha256: hash.digest('hex') });
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from ${req.url}`);
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    t.after(() => {
      upstream.closeAllConnections();
      upstream.close();
    });
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

    const dir = upDir(t);
    // The test's client connects from 127.0.0.1, trusted like a balancer: its X-Forwarded-For says who the client is.
    const up = runCohort(t, ['up', '--mode', 'inline', '--engines', '2', '--dir', dir], { env: { COHORT_HTTP_TRUSTED_PROXIES: '127.0.0.1/32, ::1' } });
    await up.waitForOutput(/front door[\s\S]*\n {14}\S.*\n/, 60_000);
    const file = JSON.parse(readFileSync(`${dir}/cluster.json`, 'utf8')) as ClusterFile;
    const [consoleNode, engine1, engine2] = file.nodes;
    assert.equal(consoleNode!.proxy, undefined);
    assert.match(engine1!.proxy!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(engine2!.proxy!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(readFileSync(engine2!.configFile, 'utf8'), /^mode = inline$/m);

    // The example cohort up printed: a curl through engine-1's proxy port, pasted into a shell, answers as printed.
    if (binaryOrSkip(t, 'curl', CURL)) {
      const printed = printedExample(up.stdout());
      assert.equal(printed.command, `curl -i '${engine1!.proxy}/app/hello'`);
      assert.deepEqual([printed.status, printed.reason], [403, 'ACCESS_NO_API']);
      assert.deepEqual(await pasteCurl(printed.command), { status: printed.status, reason: printed.reason });
    }

    const login = await fetch(`${file.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: file.adminUser, password: file.adminPassword }) });
    const asAdmin = { authorization: `Bearer ${((await login.json()) as { token: string }).token}`, 'content-type': 'application/json' };
    const put = async (section: string, body: unknown): Promise<void> => {
      const r = await fetch(`${file.adminUrl}/admin/v1/config/${section}`, { method: 'PUT', headers: asAdmin, body: JSON.stringify(body) });
      assert.equal(r.status, 200, await r.text());
    };
    const app = { id: 'app', pathPrefix: '/app', upstream: upstreamUrl, stripPrefix: true };
    const limited = { id: 'limited', pathPrefix: '/limited', publicPaths: ['/limited'], rateLimit: { policy: 'tiny', by: 'ip' }, upstream: upstreamUrl };
    const slow = { id: 'slow', pathPrefix: '/hang', publicPaths: ['/hang'], upstream: upstreamUrl, timeoutMs: TIMEOUT_MS };
    const putApis = (apis: object[]) => put('apis', { apis });
    await put('runtime', { rateLimits: { tiny: { capacity: 2, refillPerSecond: 0.001 } } });
    await putApis([app, limited, slow]);

    const newSession = async (subject: string): Promise<string> => {
      const create = () => fetch(`${engine1!.runtime}/runtime/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ subject }) });
      // Right after start the two engines may still be placing partitions: a 503 there is retried, as a client would.
      const { value: created } = await waitUntil(create, (r) => r.status !== 503, 10_000, 100);
      assert.equal(created.status, 201, await created.clone().text());
      return ((await created.json()) as { id: string }).id;
    };
    const session = await newSession('erin');
    const proxy = engine2!.proxy!;
    const asErin = () => fetch(`${proxy}/app/hello?x=1`, { headers: { cookie: `cohort_session=${session}`, 'x-cohort-subject': 'mallory' } });

    // Until the apis document reaches engine-2 the request matches no API (403).
    const { value: allowed } = await waitUntil(asErin, (r) => r.status === 200, 20_000, 100);
    assert.equal(await allowed.text(), 'hello from /hello?x=1');
    assert.equal(allowed.headers.get('x-cohort-reason'), 'ACCESS_ALLOWED');
    const last = seen.at(-1)!;
    assert.equal(last.headers['x-cohort-subject'], 'erin', 'the upstream sees the decision\'s subject, not the forged one');
    assert.equal(last.headers['x-cohort-api'], 'app');
    assert.equal(last.headers['x-cohort-decision-id'], allowed.headers.get('x-cohort-decision-id'));

    const anonymous = await fetch(`${proxy}/app/hello`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="app"');
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'ACCESS_NO_CREDENTIAL');

    // A 10 MB upload, sent in chunks: it reaches the upstream byte for byte. It is ten times
    // [http] body_limit, so it passes only because the proxy streams bodies instead of reading them.
    const payload = randomBytes(UPLOAD_BYTES);
    const sent = createHash('sha256').update(payload).digest('hex');
    const chunks = (async function* () {
      for (let i = 0; i < payload.length; i += 256 * 1024) yield payload.subarray(i, i + 256 * 1024);
    })();
    const upload = await fetch(`${proxy}/app/upload`, { method: 'POST', headers: { cookie: `cohort_session=${session}`, 'content-type': 'application/octet-stream' }, body: chunks, duplex: 'half' } as RequestInit);
    assert.equal(upload.status, 200, await upload.clone().text());
    assert.equal(await upload.text(), 'hello from /upload');
    assert.deepEqual([seen.at(-1)!.bytes, seen.at(-1)!.sha256], [UPLOAD_BYTES, sent], 'the upstream got the 10 MB intact');

    // An upstream that never answers: 504 after the API's timeoutMs.
    const hangStarted = performance.now();
    const hung = await fetch(`${proxy}/hang/forever`);
    const hungMs = performance.now() - hangStarted;
    t.diagnostic(`hanging upstream answered ${hung.status} after ${hungMs.toFixed(0)} ms (timeoutMs ${TIMEOUT_MS})`);
    assert.equal(hung.status, 504);
    assert.equal(((await hung.json()) as { error: { code: string } }).error.code, 'PROXY_UPSTREAM_TIMEOUT');
    assert.ok(hungMs >= TIMEOUT_MS - TIMER_ACCURACY_MS, `not before timeoutMs, within the timers' accuracy (${hungMs.toFixed(0)} ms)`);

    // A deny-listed address: the client behind the trusted balancer (its X-Forwarded-For entry).
    await putApis([{ ...app, denyList: ['ip:203.0.113.0/24'] }, limited, slow]);
    const savedAt = performance.now();
    const fromListed = () => fetch(`${proxy}/app/hello`, { headers: { cookie: `cohort_session=${session}`, 'x-forwarded-for': '198.51.100.1, 203.0.113.5' } });
    const { value: listed } = await waitUntil(fromListed, (r) => r.status !== 200, 30_000, 5);
    t.diagnostic(`deny-list address saved on the console, refused at engine-2's proxy ${(performance.now() - savedAt).toFixed(1)} ms after the save was acknowledged`);
    assert.equal(listed.status, 403);
    assert.equal(listed.headers.get('x-cohort-reason'), 'ACCESS_DENIED_ADDRESS');
    // Another client behind the same balancer passes; a forged entry left of the balancer's counts for nothing.
    assert.equal((await fetch(`${proxy}/app/hello`, { headers: { cookie: `cohort_session=${session}`, 'x-forwarded-for': '203.0.113.5, 198.51.100.1' } })).status, 200);
    assert.equal(seen.at(-1)!.headers['x-forwarded-for'], '203.0.113.5, 198.51.100.1, 127.0.0.1', 'the upstream gets the list with the peer appended');

    // Revoked through engine 1 (DELETE ends and revokes the session): refused at engine 2's proxy.
    const deleted = await fetch(`${engine1!.runtime}/runtime/v1/sessions/${session}`, { method: 'DELETE', headers: { authorization: `Bearer ${file.apiKey}` } });
    assert.equal(deleted.status, 204, await deleted.text());
    const deletedAt = performance.now();
    const { value: revoked } = await waitUntil(asErin, (r) => r.status !== 200, 30_000, 5);
    t.diagnostic(`session revoked through engine-1, refused at engine-2's proxy ${(performance.now() - deletedAt).toFixed(1)} ms after the revocation was acknowledged`);
    assert.equal(revoked.status, 401);
    assert.match(String(revoked.headers.get('x-cohort-reason')), /^ACCESS_(REVOKED|SESSION_UNKNOWN)$/);

    // Rate limit of two per address: the third is 429 with Retry-After (the proxy answers the reason's own status).
    const seenBefore = seen.length;
    const ping = () => fetch(`${proxy}/limited/ping`);
    const statuses: Array<[number, string | null]> = [];
    for (let i = 0; i < 3; i++) {
      const r = await ping();
      await r.arrayBuffer();
      statuses.push([r.status, r.headers.get('x-cohort-reason')]);
    }
    assert.deepEqual(statuses, [[200, 'ACCESS_ALLOWED'], [200, 'ACCESS_ALLOWED'], [429, 'ACCESS_RATE_LIMITED']]);
    const limitedAgain = await ping();
    assert.equal(limitedAgain.status, 429);
    assert.ok(Number(limitedAgain.headers.get('retry-after')) >= 1);
    assert.equal(seen.length, seenBefore + 2, 'the rate-limited requests did not reach the upstream');

    // Monitor mode: the same request, still over the limit, passes and says what it would have been denied for.
    await putApis([app, { ...limited, enforce: false }, slow]);
    const { value: monitored } = await waitUntil(ping, (r) => r.status === 200, 30_000, 20);
    assert.equal(monitored.headers.get('x-cohort-would-deny'), 'ACCESS_RATE_LIMITED');
    assert.equal(monitored.headers.get('x-cohort-reason'), 'ACCESS_ALLOWED');
    assert.equal(await monitored.text(), 'hello from /limited/ping');

    // The mode is the cluster's: a second run asking for the other one is refused.
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', consoleNode!.configFile]);
    assert.equal(stop.code, 0, stop.stderr);
    await up.exited;
    const again = await runCohortToEnd(t, ['up', '--mode', 'sideband', '--dir', dir, '--json']);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /runs in inline mode/);
  });
});
