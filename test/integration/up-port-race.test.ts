/**
 * `cohort up` and the free-port race: a port found free is only free until the node binds it,
 * and another process can take it in between (engine-2 once failed with EADDRINUSE that way).
 * Here the ports handed out are taken on purpose — the seed's (the console's) cluster port,
 * which every engine joins through, and an engine's runtime port — by listeners this test
 * holds: the nodes that cannot bind are started again on fresh ports, the engines join through
 * the console's new address, and the cluster comes up whole.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { freePort } from '../../src/cli/free-port.js';
import { LocalCluster, takenPort } from '../../src/cli/local-cluster/local-cluster.js';
import { clusterInfoOf, waitUntil } from '../helpers/cluster.js';
import { tmpDir } from '../helpers/tmp.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A loopback port held by a listener of this test until it ends (connections to it are cut then). */
async function holdPort(t: { after(fn: () => unknown): void }): Promise<number> {
  const server: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as AddressInfo).port;
}

describe('cohort up: ports taken between picking and binding', () => {
  it('starts a node that could not bind again on a fresh port; when it is the console\'s cluster port, the engines join through the new one', async (t) => {
    const consoleCluster = await holdPort(t);
    const engineRuntime = await holdPort(t);
    // Picks in plan order: console cluster, manage, admin; engine-1 cluster, manage, runtime; engine-2 ...
    let picks = 0;
    const pickPort = async (): Promise<number> => {
      picks++;
      if (picks === 1) return consoleCluster;
      if (picks === 6) return engineRuntime;
      return freePort();
    };
    const progress: string[] = [];
    const log = (line: string): void => void progress.push(line);
    const cluster = new LocalCluster({ dir: tmpDir(t), engines: 2, pickPort, onProgress: log, startTimeoutMs: 30_000 });
    t.after(() => {
      for (const n of cluster.nodes) if (!n.exit) n.child.kill('SIGKILL');
    });
    const file = await cluster.start().catch((err: unknown) => {
      throw new Error(`${String(err)}\nprogress:\n${progress.join('\n')}`);
    });

    assert.ok(progress.some((l) => l.startsWith(`console: port ${consoleCluster} was taken`)), 'the console was started again');
    assert.ok(progress.some((l) => l.startsWith(`engine-1: port ${engineRuntime} was taken`)), 'engine-1 was started again');
    const [consoleNode, engine1] = file.nodes;
    assert.notEqual(consoleNode!.cluster, `127.0.0.1:${consoleCluster}`);
    assert.notEqual(engine1!.runtime, `http://127.0.0.1:${engineRuntime}`);
    // One cluster, through the console's new cluster address.
    t.diagnostic(progress.join('\n'));
    await waitUntil(() => clusterInfoOf(consoleNode!.configFile), (info) => info.nodes.filter((n) => n.state === 'active').length === 3, 15_000);
    const created = await fetch(`${engine1!.runtime}/runtime/v1/sessions`, { signal: AbortSignal.timeout(10_000), method: 'POST', headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ subject: 'tester' }) });
    assert.equal(created.status, 201);

    // Stopped twice at once (Ctrl-C while a failed start stops the cluster too): one stop, each
    // node told and waited for once.
    const before = progress.length;
    await Promise.all([cluster.stop(30_000), cluster.stop(30_000)]);
    const stopLines = progress.slice(before);
    assert.equal(stopLines.filter((l) => l.startsWith('waiting for ')).length, 1, stopLines.join('\n'));
    for (const id of ['console', 'engine-1', 'engine-2']) assert.equal(stopLines.filter((l) => l.startsWith(`${id} `)).length, 1, `${id}: ${stopLines.join('\n')}`);
  });

  it('takenPort: only a NODE_BIND_FAILED naming one of the node\'s own ports counts', (t) => {
    const dir = tmpDir(t);
    const log = join(dir, 'node.log');
    const node = { id: 'engine-1', role: 'engine' as const, configFile: join(dir, 'engine-1.ini'), logFile: log, mode: 'sideband' as const, cluster: 20001, manage: 20002, http: 20003, httpsListeners: [], exit: { code: 1, signal: null } };
    const line = (code: string, msg: string) => `${JSON.stringify({ level: 60, code, msg })}\n`;
    writeFileSync(log, line('NODE_BIND_FAILED', 'cannot bind the runtime API on 127.0.0.1:20003: address already in use'));
    assert.deepEqual(takenPort(node), { field: 'http', port: 20003 });
    writeFileSync(log, line('NODE_BIND_FAILED', 'cannot bind the cluster address 127.0.0.1:20001: EADDRINUSE'));
    assert.deepEqual(takenPort(node), { field: 'cluster', port: 20001 });
    writeFileSync(log, line('NODE_BIND_FAILED', 'cannot bind the cluster address 127.0.0.1:20999: EADDRINUSE'));
    assert.equal(takenPort(node), undefined, 'not one of its ports');
    writeFileSync(log, line('CONFIG_INVALID', 'something else on 127.0.0.1:20003'));
    assert.equal(takenPort(node), undefined, 'another failure');
    writeFileSync(log, line('NODE_BIND_FAILED', 'cannot bind the runtime API on 127.0.0.1:20003: address already in use'));
    assert.equal(takenPort({ ...node, exit: undefined } as unknown as typeof node), undefined, 'a node still running');
  });
});
