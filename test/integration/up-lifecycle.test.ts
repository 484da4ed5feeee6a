import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { manageRequest, manageTargetOfFile } from '../../src/cli/manage-client.js';
import { clusterInfoOf, stateOf, waitUntil } from '../helpers/cluster.js';
import { alive, runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';
import { loadNodeConfig } from '../../src/config/node-config.js';
import { loadAuthority, PINNED_KEY_FILE, publicKeyText } from '../../src/policy/console-authority.js';

/**
 * `cohort up` from start to stop: cluster.json, progress, a second cohort up, a stale directory,
 * stop timeouts, members that left, Ctrl-C while starting.
 */
describe('cohort up', () => {
  it('starts a console and N engines as separate processes, writes cluster.json, and stops them all on SIGTERM', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '2', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const printed = JSON.parse(up.stdout().trim().split('\n')[0]!) as ClusterFile;
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.deepEqual(printed, file);

    assert.deepEqual(file.nodes.map((n) => [n.id, n.role]), [['console', 'console'], ['engine-1', 'engine'], ['engine-2', 'engine']]);
    assert.equal(new Set(file.nodes.map((n) => n.pid)).size, 3, 'one process per node');
    assert.match(file.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(file.adminUser, 'admin');
    assert.ok(file.adminPassword.length >= 16 && file.apiKey.length >= 32);
    for (const n of file.nodes) {
      assert.ok(existsSync(n.configFile));
      assert.match(n.cluster, /^127\.0\.0\.1:\d+$/);
      assert.ok(n.role === 'engine' ? n.runtime : n.admin);
      const info = await manageRequest<{ id: string; pid: number }>(manageTargetOfFile(n.configFile), 'GET', '/manage/v1/node');
      assert.equal(info.id, n.id);
      assert.equal(info.pid, n.pid);
      if (n.runtime) {
        // The API key of cluster.json opens the engines' runtime API.
        const created = await fetch(`${n.runtime}/runtime/v1/sessions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ subject: 'tester' }),
        });
        assert.equal(created.status, 201, await created.text());
        assert.equal((await fetch(`${n.runtime}/health/ready`)).status, 200);
      }
    }

    // Engines pin the console authority from the start: its public key is in their files, so
    // none learned it at a first contact (no DATA_DIR/console-authority.pub of their own).
    const authority = loadAuthority(join(dir, 'console'), false)!;
    for (const n of file.nodes) {
      const config = loadNodeConfig(n.configFile);
      if (n.role === 'engine') {
        assert.match(readFileSync(n.configFile, 'utf8'), new RegExp(`^console_public_key = ${authority.publicKeyText.replace(/[+/]/g, '\\$&')}$`, 'm'));
        assert.equal(publicKeyText(config.cluster.consolePublicKey!), authority.publicKeyText);
        assert.equal(existsSync(join(config.node.dataDir, PINNED_KEY_FILE)), false, `${n.id} pinned no key at first contact`);
      } else {
        assert.equal(config.cluster.consolePublicKey, undefined);
      }
    }

    up.child.kill('SIGTERM');
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr());
    for (const n of file.nodes) assert.equal(alive(n.pid), false, `${n.id} stopped`);
  });

  it('after cluster stop with every node healthy, every process including cohort up exits 0', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    await waitUntil(() => clusterInfoOf(file.nodes[0]!.configFile), (info) => stateOf(info, 'engine-1') === 'active', 3000);
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', file.nodes[1]!.configFile]);
    assert.equal(stop.code, 0, stop.stderr);
    // It waited for each node to stop, and said so.
    assert.match(stop.stdout, /waiting for console, engine-1 to save their state and stop/);
    for (const id of ['console', 'engine-1']) assert.match(stop.stdout, new RegExp(`^${id} stopped \\(`, 'm'));
    assert.match(stop.stdout, /every node of the cluster has stopped\n$/);
    assert.equal((await up.exited).code, 0, up.stderr());
    assert.match(up.stderr(), /every node has stopped\n/);
    const logs = file.nodes.map((n) => readFileSync(n.logFile, 'utf8'));
    for (const log of logs) assert.match(log, /cluster stop requested/);
  });

  it('prints progress while the nodes start; a second cohort up in the running directory exits 4, names the running nodes and changes nothing', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    const pidOf = (id: string): number => file.nodes.find((n) => n.id === id)!.pid;
    // Progress, on standard error (standard output is cluster.json alone with --json).
    assert.match(up.stderr(), /^cohort up: starting console, engine-1 in /m);
    for (const id of ['console', 'engine-1']) assert.match(up.stderr(), new RegExp(`^cohort up: ${id} ready \\(pid ${pidOf(id)}, [\\d.]+ s\\)$`, 'm'));
    assert.ok(up.stderr().indexOf('starting console') < up.stderr().indexOf('ready'), up.stderr());
    assert.equal(up.stdout().trim().split('\n').length, 1, 'cluster.json alone on standard output');

    const files = ['cluster.json', 'secrets.json', 'console.ini', 'engine-1.ini', 'console.log', 'engine-1.log'];
    const sizes = (): string => files.map((f) => `${f} ${statSync(join(dir, f)).size}`).join(', ');
    const clusterJson = readFileSync(join(dir, 'cluster.json'));
    const before = sizes();

    // Asking for one more engine too: nothing of it may be written.
    const second = await runCohortToEnd(t, ['up', '--engines', '2', '--dir', dir]);
    assert.equal(second.code, 4, second.stderr);
    assert.match(second.stderr, /already running/);
    assert.match(second.stderr, new RegExp(`console \\(pid ${pidOf('console')}\\), engine-1 \\(pid ${pidOf('engine-1')}\\)`));
    assert.match(second.stderr, /\[CLI_LOCAL_CLUSTER_RUNNING\]/);
    assert.equal(second.stdout, '');
    assert.ok(readFileSync(join(dir, 'cluster.json')).equals(clusterJson), 'cluster.json unchanged');
    assert.equal(sizes(), before, 'no file of the directory changed size');
    assert.equal(existsSync(join(dir, 'engine-2.ini')) || existsSync(join(dir, 'engine-2.log')), false, 'no engine-2 written or started');
    for (const n of file.nodes) assert.ok(alive(n.pid), `${n.id} still running`);

    // Ctrl-C: cohort up waits for each node's graceful stop and says so.
    process.kill(up.pid, 'SIGINT');
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr());
    assert.match(up.stderr(), /waiting for console, engine-1 to stop gracefully \(each saves its state first; up to 60\.0 s\)/);
    for (const id of ['console', 'engine-1']) assert.match(up.stderr(), new RegExp(`^cohort up: ${id} stopped \\(`, 'm'));
    for (const n of file.nodes) assert.equal(alive(n.pid), false, `${n.id} stopped`);
  });

  it('starts normally in a directory whose last cohort up was killed with SIGKILL (stale cluster.json, dead pids)', async (t) => {
    const dir = upDir(t);
    const first = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json']);
    await first.waitForOutput(/"clusterId"/, 30_000);
    const stale = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    process.kill(-first.pid, 'SIGKILL'); // cohort up and its nodes: one process group
    await first.exited;
    await waitUntil(async () => stale.nodes.filter((n) => alive(n.pid)).length, (n) => n === 0, 10_000);

    // As engine-1 would have kept it had the two stopped together: a full start waits for a
    // majority of the engines an engine last counted, unless `cohort up` starts fewer.
    writeFileSync(join(dir, 'engine-1', 'grid-engines.json'), `${JSON.stringify({ engines: ['engine-1', 'engine-2'] })}\n`);
    const again = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json']);
    await again.waitForOutput(/"clusterId"/, 30_000);
    assert.match(again.stderr(), /^cohort up: engine-1 last ran beside engine-2, not started now: it no longer waits for it$/m);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'engine-1', 'grid-engines.json'), 'utf8')), { engines: ['engine-1'] });
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.deepEqual(file.nodes.map((n) => n.id), ['console', 'engine-1']);
    for (const n of file.nodes) {
      assert.ok(alive(n.pid), `${n.id} running`);
      assert.ok(!stale.nodes.some((s) => s.pid === n.pid), `${n.id} has a new pid`);
    }
    again.child.kill('SIGTERM');
    assert.equal((await again.exited).code, 0, again.stderr());
  });

  it('kills a node that does not stop within --stop-timeout, says so and exits 1', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json', '--stop-timeout', '2']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    const engine = file.nodes.find((n) => n.id === 'engine-1')!;
    // A paused process cannot stop.
    process.kill(engine.pid, 'SIGSTOP');
    t.after(() => {
      if (alive(engine.pid)) process.kill(engine.pid, 'SIGKILL');
    });
    process.kill(up.pid, 'SIGTERM');
    const exit = await up.exited;
    assert.equal(exit.code, 1, up.stderr());
    assert.match(up.stderr(), /^cohort up: console stopped \(/m);
    assert.match(up.stderr(), /^cohort up: engine-1 \(pid \d+\) did not stop within 2\.0 s: killing it \(SIGKILL\); what it had not saved yet is lost$/m);
    assert.equal(alive(engine.pid), false);
  });

  it('a member that left stays listed as left while the cluster runs, also to a node restarted meanwhile, and is gone after a full stop and start', async (t) => {
    const dir = upDir(t);
    const first = runCohort(t, ['up', '--engines', '2', '--dir', dir, '--json']);
    await first.waitForOutput(/"clusterId"/, 30_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    const node = (id: string): ClusterFile['nodes'][number] => file.nodes.find((n) => n.id === id)!;
    const states = async (id: string): Promise<string> =>
      (await clusterInfoOf(node(id).configFile)).nodes
        .map((n) => `${n.id}=${n.state}`)
        .sort()
        .join(' ');

    // engine-2 stops gracefully: it leaves.
    process.kill(node('engine-2').pid, 'SIGTERM');
    await waitUntil(() => states('console'), (s) => s === 'console=active engine-1=active engine-2=left', 10_000);

    // engine-1 restarts on its own: it learns of the left member from the console.
    process.kill(node('engine-1').pid, 'SIGTERM');
    await waitUntil(async () => alive(node('engine-1').pid), (a) => !a, 30_000);
    const engine1 = runCohort(t, ['start', '-c', node('engine-1').configFile]);
    await engine1.waitForOutput(/"msg":"engine engine-1 started"/, 30_000);
    await waitUntil(() => states('engine-1'), (s) => s === 'console=active engine-1=active engine-2=left', 10_000);

    // The whole cluster stops, and starts again without engine-2.
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', node('console').configFile]);
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    await first.exited;
    await engine1.exited;
    // members.json keeps engine-2's address to join through, not its state.
    const remembered = JSON.parse(readFileSync(join(dir, 'console', 'members.json'), 'utf8')) as { addresses: string[] };
    assert.ok(remembered.addresses.includes(node('engine-2').cluster), JSON.stringify(remembered));

    // As engine-1 would have kept it had the two stopped together: a full start waits for a
    // majority of the engines an engine last counted, unless `cohort up` starts fewer.
    writeFileSync(join(dir, 'engine-1', 'grid-engines.json'), `${JSON.stringify({ engines: ['engine-1', 'engine-2'] })}\n`);
    const again = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json']);
    await again.waitForOutput(/"clusterId"/, 30_000);
    assert.match(again.stderr(), /^cohort up: engine-1 last ran beside engine-2, not started now: it no longer waits for it$/m);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'engine-1', 'grid-engines.json'), 'utf8')), { engines: ['engine-1'] });
    for (const id of ['console', 'engine-1']) {
      await waitUntil(() => states(id), (s) => s === 'console=active engine-1=active', 10_000);
    }
    again.child.kill('SIGTERM');
    assert.equal((await again.exited).code, 0, again.stderr());
  });

  it('Ctrl-C while the nodes are starting stops them once and exits 0', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '2', '--dir', dir]);
    await up.waitForOutput(/^cohort up: starting /m, 30_000);
    process.kill(up.pid, 'SIGINT');
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr());
    assert.equal(up.stderr().match(/waiting for .* to stop gracefully/g)?.length, 1, up.stderr());
    assert.doesNotMatch(up.stderr(), /CLI_LOCAL_CLUSTER_FAILED|killing/);
    assert.equal(up.stdout(), '', 'no summary: the cluster never was up');
  });
});
