/**
 * `cohort up` prints a `curl` through the front door of the cluster it started, and the answer
 * that request got. The test runs the printed command itself, in a shell, with Debian's curl:
 * it must answer as printed (sideband: the forward-auth door of the first engine; inline: the
 * first engine's proxy port), and once an API protects the path, the same command is let
 * through — so the example is a real front door, not text.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { waitUntil } from '../helpers/cluster.js';
import { binaryOrSkip } from '../helpers/external-proxies.js';
import { runCohort, upDir } from '../helpers/processes.js';

const CURL = process.env.COHORT_TEST_CURL ?? '/usr/bin/curl';
const run = promisify(execFile);

/** The printed command and the answer printed under it. */
function printedExample(stdout: string): { command: string; status: number; reason: string } {
  const m = /^ {2}front door {2}(curl .+)\n {14}answers (\d{3}) (ACCESS_[A-Z_]+)/m.exec(stdout);
  assert.ok(m, `a front-door example in:\n${stdout}`);
  return { command: m[1]!, status: Number(m[2]), reason: m[3]! };
}

/** Runs `command` in a shell, as someone who pasted it would; the status and X-Cohort-Reason of the answer. */
async function paste(command: string): Promise<{ status: number; reason: string | undefined }> {
  assert.ok(command.startsWith('curl '), command);
  const { stdout } = await run('/bin/sh', ['-c', `${CURL}${command.slice('curl'.length)} --silent --max-time 5`]);
  const status = /^HTTP\/[\d.]+ (\d{3})/m.exec(stdout);
  assert.ok(status, stdout);
  return { status: Number(status[1]), reason: /^x-cohort-reason: *(\S+)/im.exec(stdout)?.[1] };
}

async function startUp(t: Parameters<typeof upDir>[0], mode: 'sideband' | 'inline'): Promise<{ stdout: string; cluster: ClusterFile }> {
  const dir = upDir(t);
  const up = runCohort(t, ['up', '--engines', '1', '--mode', mode, '--dir', dir]);
  await up.waitForOutput(/front door[\s\S]*\n {14}\S.*\n/, 60_000);
  return { stdout: up.stdout(), cluster: JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile };
}

async function saveApis(cluster: ClusterFile, apis: object[]): Promise<void> {
  const login = await fetch(`${cluster.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: cluster.adminUser, password: cluster.adminPassword }) });
  const token = ((await login.json()) as { token: string }).token;
  const r = await fetch(`${cluster.adminUrl}/admin/v1/config/apis`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ apis }) });
  assert.equal(r.status, 200, await r.text());
}

describe('cohort up prints a request through the front door', () => {
  it('sideband: a forward-auth curl to the first engine that answers as printed, and passes once an API allows the path', async (t) => {
    if (!binaryOrSkip(t, 'curl', CURL)) return;
    const { stdout, cluster } = await startUp(t, 'sideband');
    const printed = printedExample(stdout);
    const engine = cluster.nodes.find((n) => n.role === 'engine')!;
    assert.ok(printed.command.includes(`${engine.runtime}/authz/forward`), printed.command);
    assert.ok(printed.command.includes(`X-Cohort-Key: ${cluster.apiKey}`), 'the key of cluster.json opens the door');
    // A new cluster has no API yet: the door refuses and says why.
    assert.deepEqual([printed.status, printed.reason], [403, 'ACCESS_NO_API']);
    assert.match(stdout, /save one on the console/);
    assert.deepEqual(await paste(printed.command), { status: printed.status, reason: printed.reason });

    await saveApis(cluster, [{ id: 'app', pathPrefix: '/app', publicPaths: ['/app'] }]);
    const { value } = await waitUntil(() => paste(printed.command), (a) => a.status === 200, 20_000, 100);
    assert.equal(value.reason, 'ACCESS_ALLOWED');
  });

  it('inline: a curl through the first engine\'s proxy port that answers as printed', async (t) => {
    if (!binaryOrSkip(t, 'curl', CURL)) return;
    const { stdout, cluster } = await startUp(t, 'inline');
    const printed = printedExample(stdout);
    const engine = cluster.nodes.find((n) => n.role === 'engine')!;
    assert.equal(printed.command, `curl -i '${engine.proxy}/app/hello'`);
    assert.deepEqual([printed.status, printed.reason], [403, 'ACCESS_NO_API']);
    assert.deepEqual(await paste(printed.command), { status: printed.status, reason: printed.reason });
  });
});
