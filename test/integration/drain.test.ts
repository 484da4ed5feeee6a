/**
 * A draining engine (SIGTERM with `[http] drain_seconds`): /health/ready answers 503 at once
 * while a kept-alive connection stays kept alive; once the drain is over the listener refuses
 * new connections, and a connection left idle is not cut by the engine: its client may still
 * send a request on it, answered with `Connection: close`, and once the clients closed every
 * connection the engine goes on stopping. `cohort drain` (a container's pre-stop hook) drains
 * on its own and returns when the drain is over; the stop that follows does not drain again.
 * `cohort health` (a container's health check) asks the manage listener.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { startNode, waitUntil } from '../helpers/cluster.js';
import { runCohortToEnd } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

/** Sends one GET on `socket` and resolves with the answer's head (status line and headers). */
function getOn(socket: Socket, host: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = text.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (text.length < end + 4 + length) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve(head.toLowerCase());
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

/** The status of a GET on a connection of its own, closed after it (fetch would keep it open, and the engine would wait for it). */
function statusOnce(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    }).once('error', reject);
  });
}

/** A connected socket, or the connection's error (ECONNREFUSED once the listener closed). */
function connected(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.once('connect', () => resolve(socket)).once('error', reject);
  });
}

describe('draining', () => {
  it('an engine told to stop answers 503 on ready, keeps connections alive, then refuses new ones and answers on an idle one with Connection: close', async (t) => {
    const dir = tmpDir(t);
    const engine = await startNode(t, dir, 'engine-1', { overrides: { http: { drain_seconds: '3' } } });
    await startNode(t, dir, 'console', { role: 'console', peers: engine.address });
    const runtime = engine.config.http!.runtime!;
    const base = `http://${runtime}`;
    await waitUntil(() => statusOnce(`${base}/health/ready`), (s) => s === 200, 20_000, 50);

    const [host, port] = [runtime.slice(0, runtime.lastIndexOf(':')), Number(runtime.slice(runtime.lastIndexOf(':') + 1))];
    const socket = await connected(host, port);
    t.after(() => socket.destroy());
    const before = await getOn(socket, runtime, '/health/live');
    assert.match(before, /^http\/1\.1 200/);
    assert.match(before, /connection: keep-alive/, 'kept alive before the drain');

    process.kill(engine.proc.pid, 'SIGTERM');
    await waitUntil(() => statusOnce(`${base}/health/ready`), (s) => s === 503, 10_000, 50);
    const during = await getOn(socket, runtime, '/health/live');
    assert.match(during, /^http\/1\.1 200/, 'still served while draining');
    assert.match(during, /connection: keep-alive/, 'kept alive while draining');

    // The drain is over once a new connection is refused; the one kept alive is still open
    // and, idle for a while after that, still answered, with Connection: close.
    await waitUntil(() => connected(host, port).then((s) => (s.destroy(), 'accepted'), (err: NodeJS.ErrnoException) => err.code), (code) => code === 'ECONNREFUSED', 15_000, 20);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const after = await getOn(socket, runtime, '/health/live');
    assert.match(after, /^http\/1\.1 200/, 'an idle connection is still answered after the listener closed');
    assert.match(after, /connection: close/);
    await closed;
    assert.equal((await engine.proc.exited).code, 0);
    assert.match(engine.proc.stdout(), /"clientsClosedAll":true/, 'the engine went on once its client closed the connection');
  });

  it('cohort drain drains an engine and returns when the drain is over; the stop then goes straight on; cohort health follows the node', async (t) => {
    const dir = tmpDir(t);
    const engine = await startNode(t, dir, 'engine-1', { overrides: { http: { drain_seconds: '1.5' } } });
    await startNode(t, dir, 'console', { role: 'console', peers: engine.address });
    const base = `http://${engine.config.http!.runtime!}`;
    await waitUntil(async () => (await fetch(`${base}/health/ready`)).status, (s) => s === 200, 20_000, 50);

    // The file from COHORT_CONFIG_FILE, as in the container image.
    const healthy = await runCohortToEnd(t, ['health'], { env: { COHORT_CONFIG_FILE: engine.file } });
    assert.equal(healthy.code, 0, healthy.stderr);
    assert.match(healthy.stdout, /engine-1 is live/);

    const started = performance.now();
    const drained = await runCohortToEnd(t, ['drain', '-c', engine.file]);
    const tookMs = performance.now() - started;
    console.log(`cohort drain returned after ${Math.round(tookMs)} ms (drain_seconds 1.5)`);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /engine-1 drained for 1\.5 s/);
    assert.ok(tookMs >= 1500, 'returns once the drain time has passed');
    const ready = await fetch(`${base}/health/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(((await ready.json()) as { reasons: string[] }).reasons, ['stopping']);
    assert.equal((await fetch(`${base}/health/live`)).status, 200, 'still serving');

    process.kill(engine.proc.pid, 'SIGTERM');
    assert.equal((await engine.proc.exited).code, 0);
    assert.equal(engine.proc.stdout().match(/"msg":"draining: /g)?.length, 1, 'the stop did not drain a second time');
    const gone = await runCohortToEnd(t, ['health', '-c', engine.file, '--timeout', '2']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /CLI_NODE_UNREACHABLE/);
  });
});
