/**
 * The admin sign-in of a real console process under attack, from several loopback source
 * addresses (127.0.0.0/8 is all loopback on Linux):
 * - 2,000 sign-ins with made-up names (half from one address, half spread over 100) leave a
 *   real sign-in from the operator's address under 1 s (the figures are printed);
 * - five wrong passwords for `admin` from an outsider's address lock that address out, not
 *   the real admin signing in from another;
 * - every failure is logged with its source and user name, never the password, and audited;
 * - a token survives a console restart, and a signed-out token stays refused across it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, waitUntil, type TestNode } from '../helpers/cluster.js';
import { runCohort, suiteCleanups } from '../helpers/processes.js';

interface Answer {
  status: number;
  body: { token?: string; error?: { code: string }; records?: Array<{ action: string; user: string; summary: string }> };
  retryAfter?: string;
}

const agents = new Map<string, Agent>();
/** One keep-alive agent per source address, so a flood does not run out of ephemeral ports. */
function agentFrom(localAddress: string): Agent {
  let agent = agents.get(localAddress);
  if (!agent) agents.set(localAddress, (agent = new Agent({ keepAlive: true, maxSockets: 16, localAddress })));
  return agent;
}

function call(base: string, method: string, path: string, options: { from?: string; body?: unknown; token?: string } = {}): Promise<Answer> {
  const url = new URL(path, base);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent: agentFrom(options.from ?? '127.0.0.1'),
        headers: {
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Answer['body']) : {}, retryAfter: res.headers['retry-after'] }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('admin sign-in of a real console under a flood of guesses', () => {
  const suite = suiteCleanups(after);
  let dir = '';
  let consoleNode: TestNode;
  let base = '';
  let password = '';
  const OUTSIDER_PASSWORD = 'outsider-guess-7f3a9c';

  const signIn = (from: string, user: string, pass: string): Promise<Answer> => call(base, 'POST', '/admin/v1/login', { from, body: { user, password: pass } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-signin-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
    suite.after(() => {
      for (const agent of agents.values()) agent.destroy();
    });
    consoleNode = await startNode(suite, dir, 'console', { role: 'console' });
    base = `http://${consoleNode.config.http!.admin!}`;
    password = readFileSync(join(dir, 'console', 'admin-password'), 'utf8').trim();
  });

  it('2,000 sign-ins with made-up names leave a real sign-in under 1 s', async () => {
    // The time of a real sign-in on this machine now (scrypt dominates it), the median of three.
    const quiet: number[] = [];
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      const first = await signIn('127.0.0.1', 'admin', password);
      quiet.push(performance.now() - t0);
      assert.equal(first.status, 200, JSON.stringify(first.body));
    }
    const baselineMs = quiet.sort((a, b) => a - b)[1]!;

    const total = 2000;
    const started = performance.now();
    const flood = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'signin-flood.js'), base, String(total), '64'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    suite.after(() => {
      try {
        process.kill(-flood.pid!, 'SIGKILL');
      } catch {
        // ended
      }
    });
    let out = '';
    flood.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const ended = new Promise<number | null>((resolve) => flood.once('close', resolve));
    const answered = (): number => Number(/answered (\d+)\n(?![\s\S]*answered)/.exec(out)?.[1] ?? 0);
    await waitUntil(async () => answered(), (n) => n >= 200, 60_000, 5);
    const during: number[] = [];
    const doneAtFirst = answered();
    for (let k = 0; k < 3; k++) {
      const s = performance.now();
      const real = await signIn('127.0.0.1', 'admin', password);
      during.push(performance.now() - s);
      assert.equal(real.status, 200, `the real sign-in during the flood: ${JSON.stringify(real.body)}`);
    }
    const doneAtLast = answered();
    assert.equal(await ended, 0);
    const floodMs = performance.now() - started;
    const statuses = new Map(Object.entries(JSON.parse(/done (.*)\n/.exec(out)![1]!) as Record<string, number>));
    console.log(
      `sign-in: without a flood ${quiet.map((d) => d.toFixed(0)).join(', ')} ms; during a flood of ${total} made-up sign-ins (64 in flight from another process, ${doneAtFirst} answered when the first real one started, ${doneAtLast} after the last): ` +
        `${during.map((d) => d.toFixed(0)).join(', ')} ms; flood took ${floodMs.toFixed(0)} ms; answers ${JSON.stringify(Object.fromEntries(statuses))} (a shared, busy machine: indicative only)`,
    );
    assert.ok(doneAtLast < total, `the real sign-ins ran while the flood was still going (${doneAtLast} answered after the last)`);
    // Under 1 s, by design (console/login-guard.ts): the operator's address has a check kept
    // for it, and the flood's addresses, once they failed, hold one check at a time between
    // them, so the real check shares the two cores with at most one of theirs. The median of
    // three, so that one stall of this shared machine (not the flood's doing) is not the figure.
    const typical = [...during].sort((a, b) => a - b)[1]!;
    assert.ok(typical < 1000, `a real sign-in took ${typical.toFixed(0)} ms during the flood (median of three; ${baselineMs.toFixed(0)} ms without)`);
    assert.ok((statuses.get('429 AUTH_LOGIN_THROTTLED') ?? 0) > total / 2, 'most of the flood was refused before any password check');
    // The flooding address is still over its budget (it refills by 10 a minute).
    let refused: Answer | undefined;
    for (let i = 0; i < 20 && refused?.status !== 429; i++) refused = await signIn('127.0.0.2', `made-up-late-${i}`, 'x');
    assert.deepEqual([refused!.status, refused!.body.error?.code], [429, 'AUTH_LOGIN_THROTTLED']);
    assert.ok(Number(refused!.retryAfter) >= 1, `Retry-After: ${refused!.retryAfter}`);
  });

  it('five wrong passwords from an outsider lock the outsider out, not the real admin from its own address', async () => {
    for (let i = 0; i < 5; i++) {
      const a = await signIn('127.0.0.3', 'admin', OUTSIDER_PASSWORD);
      assert.deepEqual([a.status, a.body.error?.code], [401, 'AUTH_INVALID_CREDENTIAL']);
    }
    const locked = await signIn('127.0.0.3', 'admin', password);
    assert.deepEqual([locked.status, locked.body.error?.code], [429, 'AUTH_LOCKED_OUT'], 'even the right password, from the outsider\'s address');
    const real = await signIn('127.0.0.1', 'admin', password);
    assert.equal(real.status, 200, JSON.stringify(real.body));
    // Every failure is logged with its source and user, never the password.
    const log = consoleNode.proc.stdout() + consoleNode.proc.stderr();
    const failures = log.split('\n').filter((l) => l.includes('"msg":"admin sign-in failed"') && l.includes('"source":"127.0.0.3"') && l.includes('"user":"admin"'));
    assert.equal(failures.length, 5, 'one line per wrong password');
    assert.ok(failures.every((l) => l.includes('"reason":"wrong-password"')));
    assert.ok(!log.includes(OUTSIDER_PASSWORD) && !log.includes(password), 'no password in the log');
  });

  it('a token survives a console restart; a signed-out token stays refused; the failures are in the audit trail', async () => {
    const kept = (await signIn('127.0.0.1', 'admin', password)).body.token!;
    const signedOut = (await signIn('127.0.0.1', 'admin', password)).body.token!;
    assert.equal((await call(base, 'POST', '/admin/v1/logout', { token: signedOut })).status, 204);
    assert.equal((await call(base, 'GET', '/admin/v1/cluster', { token: signedOut })).body.error?.code, 'AUTH_INVALID_CREDENTIAL');

    process.kill(consoleNode.proc.pid, 'SIGTERM');
    assert.equal((await consoleNode.proc.exited).code, 0);
    for (const agent of agents.values()) agent.destroy();
    agents.clear();
    const proc = runCohort(suite, ['start', '-c', consoleNode.file]);
    await proc.waitForOutput(/"msg":"console console started"/, 20_000);
    consoleNode = { ...consoleNode, proc };

    assert.equal((await call(base, 'GET', '/admin/v1/cluster', { token: kept })).status, 200, 'the token from before the restart');
    const refused = await call(base, 'GET', '/admin/v1/cluster', { token: signedOut });
    assert.deepEqual([refused.status, refused.body.error?.code], [401, 'AUTH_INVALID_CREDENTIAL'], 'signed out stays signed out');
    // The failures of the last minute were written to the audit trail when the console stopped.
    const audit = await call(base, 'GET', '/admin/v1/audit?limit=1000', { token: kept });
    const failed = audit.body.records!.filter((r) => r.action === 'auth.login-failed');
    const outsider = failed.find((r) => r.user === 'admin' && r.summary.includes('from 127.0.0.3'));
    assert.ok(outsider, `audited failures: ${JSON.stringify(failed.slice(0, 3))}`);
    assert.match(outsider.summary, /6 failed sign-in\(s\).*wrong-password 5, locked-out 1/);
    assert.ok(failed.length <= 110, `${failed.length} audit records for the flood: one per address`);
    assert.ok(failed.some((r) => r.user === '-' && r.summary.includes('from 127.0.0.2')));
  });
});
