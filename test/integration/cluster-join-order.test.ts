/**
 * Nodes may start in any order: a node whose peers are not up yet keeps running alone and
 * joins once one answers; a configured peer whose host name does not resolve is listed as
 * `not-resolved`; a node restarted after a graceful stop finds the members it knew.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../../src/cli/free-port.js';
import { clusterInfoOf, startNode, stateOf, waitUntil } from '../helpers/cluster.js';
import { tmpDir } from '../helpers/tmp.js';

describe('joining in any order', () => {
  it('an engine started before its peer keeps running, lists an unresolvable peer as not-resolved, and joins when the peer starts', async (t) => {
    const dir = tmpDir(t);
    const consolePort = await freePort();
    const consoleAddress = `127.0.0.1:${consolePort}`;
    const engine = await startNode(t, dir, 'engine-1', { peers: `${consoleAddress},no-such-host.invalid:8020` });
    await engine.proc.waitForOutput(/running alone and retrying/, 10_000);
    const alone = await clusterInfoOf(engine.file);
    assert.deepEqual(
      alone.nodes.map((n) => [n.id, n.address, n.state]),
      [['engine-1', engine.address, 'active'], [null, 'no-such-host.invalid:8020', 'not-resolved']],
    );

    const consoleNode = await startNode(t, dir, 'console', { role: 'console', overrides: { cluster: { bind: consoleAddress } } });
    await waitUntil(() => clusterInfoOf(engine.file), (i) => stateOf(i, 'console') === 'active', 5000);
    await waitUntil(() => clusterInfoOf(consoleNode.file), (i) => stateOf(i, 'engine-1') === 'active', 5000);
  });

  it('a node restarted after a graceful stop rejoins through the members it remembers when its configured peer is gone', async (t) => {
    const dir = tmpDir(t);
    const seed = await startNode(t, dir, 'console', { role: 'console' });
    const a = await startNode(t, dir, 'engine-1', { peers: seed.address });
    const b = await startNode(t, dir, 'engine-2', { peers: seed.address });
    await waitUntil(() => clusterInfoOf(b.file), (i) => stateOf(i, 'engine-1') === 'active' && stateOf(i, 'console') === 'active', 5000);
    // engine-2 stops gracefully (remembering the members), then the console goes away.
    b.proc.child.kill('SIGTERM');
    assert.equal((await b.proc.exited).code, 0);
    seed.proc.child.kill('SIGTERM');
    assert.equal((await seed.proc.exited).code, 0);
    // Restarted with the same configuration: its only configured peer is down.
    const again = await startNode(t, dir, 'engine-2', { peers: seed.address, overrides: { cluster: { bind: b.address }, http: { manage: b.config.http!.manage, runtime: b.config.http!.runtime, admin: b.config.http!.admin } } });
    await waitUntil(() => clusterInfoOf(again.file), (i) => stateOf(i, 'engine-1') === 'active', 5000);
    await waitUntil(() => clusterInfoOf(a.file), (i) => stateOf(i, 'engine-2') === 'active', 5000);
  });
});
