/**
 * A draining engine (SIGTERM with `[http] drain_seconds`): /health/ready answers 503 at once,
 * and a kept-alive connection opened before the drain still gets its answer, with
 * `Connection: close`, after which the engine closes it; before the drain the same
 * connection is kept alive.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startNode, waitUntil } from '../helpers/cluster.js';
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

describe('draining', () => {
  it('an engine told to stop answers 503 on ready, and answers on open connections with Connection: close', async (t) => {
    const dir = tmpDir(t);
    const engine = await startNode(t, dir, 'engine-1', { overrides: { http: { drain_seconds: '5' } } });
    await startNode(t, dir, 'console', { role: 'console', peers: engine.address });
    const runtime = engine.config.http!.runtime!;
    const base = `http://${runtime}`;
    await waitUntil(async () => (await fetch(`${base}/health/ready`)).status, (s) => s === 200, 20_000, 50);

    const [host, port] = [runtime.slice(0, runtime.lastIndexOf(':')), Number(runtime.slice(runtime.lastIndexOf(':') + 1))];
    const socket = connect({ host, port });
    t.after(() => socket.destroy());
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const before = await getOn(socket, runtime, '/health/live');
    assert.match(before, /^http\/1\.1 200/);
    assert.match(before, /connection: keep-alive/, 'kept alive before the drain');

    process.kill(engine.proc.pid, 'SIGTERM');
    await waitUntil(async () => (await fetch(`${base}/health/ready`)).status, (s) => s === 503, 10_000, 50);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const during = await getOn(socket, runtime, '/health/live');
    assert.match(during, /^http\/1\.1 200/, 'still served while draining');
    assert.match(during, /connection: close/);
    await closed;
  });
});
