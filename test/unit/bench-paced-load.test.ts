/**
 * bench/paced-load.ts (through load-runner's `runLoad` with a rate): requests leave on a
 * schedule whatever the server does, answers of every framing are read, failures counted, and
 * a server that stalls is charged for the requests that waited behind the stall.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad } from '../../bench/load-runner.js';
import { mergedPercentile } from '../../bench/quantiles.js';

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; base: string }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function paced(base: string, rate: number, seconds: number, connections: number, graceMs?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-paced-'));
  try {
    return await runLoad({ tool: 'wrk', dir, name: 'paced', base, requests: [{ path: '/a', headers: { 'x-n': '1' } }, { path: '/b', headers: {} }], seconds, connections, threads: 1, rate, ...(graceMs !== undefined ? { graceMs } : {}) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('bench paced load', () => {
  it('sends rate x seconds requests, reads answers with a length, chunked and without a body, and counts 4xx/5xx as errors', async () => {
    let n = 0;
    const paths = new Set<string>();
    const { server, base } = await serve((req, res) => {
      paths.add(req.url!);
      const kind = n++ % 4;
      if (kind === 0) res.writeHead(200, { 'content-length': '5' }).end('hello');
      else if (kind === 1) {
        res.writeHead(200);
        res.write('chunk one ');
        res.end('chunk two');
      } else if (kind === 2) res.writeHead(204).end();
      else res.writeHead(503, { 'content-length': '2' }).end('no');
    });
    try {
      const slice = await paced(base, 200, 1, 4);
      assert.equal(slice.requests, 200);
      assert.equal(n, 200, 'the server saw every request');
      assert.equal(slice.errors, 50, 'every fourth answer was a 503');
      assert.deepEqual([...paths].sort(), ['/a', '/b'], 'the requests are cycled');
      // Evenly spaced: the run lasts about its seconds, not as long as a closed loop would take.
      assert.ok(slice.seconds >= 0.99 && slice.seconds < 5, `seconds ${slice.seconds}`);
    } finally {
      server.close();
    }
  });

  it('opens a connection in place of each one the server closes, and answers every request', async () => {
    // Every third answer closes its connection (Connection: close).
    let n = 0;
    let opened = 0;
    const { server, base } = await serve((_req, res) => {
      const close = ++n % 3 === 0;
      res.writeHead(200, { 'content-length': '2', ...(close ? { connection: 'close' } : {}) }).end('ok');
    });
    server.on('connection', () => opened++);
    try {
      const slice = await paced(base, 40, 1.5, 4);
      assert.equal(slice.requests, 60);
      assert.equal(slice.errors, 0);
      assert.ok(opened >= 4 + 15, `connections opened: ${opened}`);
    } finally {
      server.close();
    }
  });

  it('sends a request once more when its connection closed before any byte of the answer came back', async () => {
    // The server drops the connection the first request arrived on without answering it.
    let n = 0;
    const { server, base } = await serve((req, res) => {
      if (++n === 1) req.socket.destroy();
      else res.writeHead(200, { 'content-length': '2' }).end('ok');
    });
    try {
      const slice = await paced(base, 20, 1, 2);
      assert.equal(slice.requests, 20);
      assert.equal(slice.errors, 0, 'the dropped request was answered when sent again');
      assert.equal(n, 21, 'the server saw it twice');
    } finally {
      server.close();
    }
  });

  it('ends, counting the unanswered requests as errors, when the server never answers', async () => {
    const held: ServerResponse[] = [];
    const { server, base } = await serve((_req, res) => void held.push(res));
    try {
      const slice = await paced(base, 10, 1, 2, 500);
      assert.equal(slice.requests, 10);
      assert.equal(slice.errors, 10);
    } finally {
      for (const res of held) res.destroy();
      server.close();
    }
  });

  it('times the requests that waited behind a stalled server from when they fell due', async () => {
    // The server holds every answer to a request that arrives between 300 ms and 700 ms after
    // the first one, until 700 ms. With 4 connections, 4 requests wait in the server and the
    // rest of the window's (about 76) wait in the generator for a connection.
    let first: number | undefined;
    const { server, base } = await serve((_req, res) => {
      const now = performance.now();
      first ??= now;
      const since = now - first;
      const answer = () => res.writeHead(200, { 'content-length': '2' }).end('ok');
      if (since >= 300 && since < 700) setTimeout(answer, 700 - since);
      else answer();
    });
    try {
      const slice = await paced(base, 200, 2, 4);
      assert.equal(slice.requests, 400);
      assert.equal(slice.errors, 0);
      // Those that fell due in the window's first 300 ms (about 60 of 400, 15%) waited 100 ms
      // or more: a generator timing from the moment it could send would show only the 4 held
      // in the server (1%).
      assert.ok(mergedPercentile([slice], 90) >= 100, `p90 ${mergedPercentile([slice], 90)} ms`);
    } finally {
      server.close();
    }
  });
});
