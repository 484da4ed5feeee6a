import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { manageRequest, manageTargetOfFile } from '../../src/cli/manage-client.js';
import { runCohort } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('cohort up', () => {
  it('starts a console and N engines as separate processes, writes cluster.json, and stops them all on SIGTERM', async (t) => {
    const dir = tmpDir(t);
    const up = runCohort(t, ['up', '--engines', '2', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const printed = JSON.parse(up.stdout().trim().split('\n')[0]!) as ClusterFile;
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.deepEqual(printed, file);
    t.after(() => {
      for (const n of file.nodes) if (alive(n.pid)) process.kill(n.pid, 'SIGKILL');
    });

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
    }

    up.child.kill('SIGTERM');
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr());
    for (const n of file.nodes) assert.equal(alive(n.pid), false, `${n.id} stopped`);
  });
});
