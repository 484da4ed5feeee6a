/**
 * A tiny HTTP load balancer for tests: every request goes to the next target in turn (never
 * sticky, whatever the connection), Host kept as the client sent it, bodies streamed. It
 * counts the requests each target got.
 */
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export interface Balancer {
  url: string;
  /** Requests sent to each target, by target URL. */
  counts: Map<string, number>;
}

export async function startRoundRobin(t: Pick<TestContext, 'after'>, targets: string[]): Promise<Balancer> {
  const agent = new Agent({ keepAlive: true });
  const counts = new Map(targets.map((u) => [u, 0]));
  let next = 0;
  const server: Server = createServer((req, res) => {
    const target = new URL(targets[next++ % targets.length]!);
    counts.set(target.origin, (counts.get(target.origin) ?? 0) + 1);
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
    agent.destroy();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, counts };
}
