import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomInt } from 'node:crypto';

/**
 * Ports below the OS's ephemeral range: outgoing connections never take them, so a port found
 * free here stays free until the process it is meant for binds it. (A port from bind(0) comes
 * from the ephemeral range, where any outgoing connection on the host may take it meanwhile.)
 */
function listenerRange(): [number, number] {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && Number.isInteger(low) && low > 12_000) return [10_000, low - 1];
  } catch {
    // not Linux: fall back to the default range's neighbourhood
  }
  return [20_000, 32_767];
}

function tryListen(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined));
    });
  });
}

/**
 * A free TCP port on `host` for a listener another process will bind: a random one below the
 * ephemeral range that binds now, or (after 50 tries) one from the OS.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [low, high] = listenerRange();
  for (let i = 0; i < 50; i++) {
    const port = await tryListen(host, randomInt(low, high + 1));
    if (port !== undefined) return port;
  }
  const port = await tryListen(host, 0);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}
