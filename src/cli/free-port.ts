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
 * The ports of the Fetch standard's "bad port" list from 1024 up: browsers refuse to open them
 * and so does Node's own fetch ("bad port"), so a web console, a runtime API or an example
 * `curl` printed on one of them would not be reached from a browser (10080 lies in the range
 * above: a full test run once handed it to a console's admin listener).
 */
const BLOCKED_BY_BROWSERS = new Set([1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080]);

/** The `index`th candidate of the range from `low` spanning `span` ports, or undefined for a port browsers refuse (pure). */
export function candidatePort(low: number, span: number, index: number): number | undefined {
  const port = low + (index % span);
  return BLOCKED_BY_BROWSERS.has(port) ? undefined : port;
}

/** Where this process looks for its next port: a random place in the range, then onwards. */
let cursor: number | undefined;

/**
 * A free TCP port on `host` for a listener another process will bind: the next one below the
 * ephemeral range that binds now (never one browsers refuse), or (after 50 tries) one from the OS.
 *
 * Ports are taken in order from a random starting point, not at random each time: between
 * the moment a port is found free and the moment its listener binds it, another caller could
 * be handed the same port. In order, this process never hands one out twice (until it has gone
 * round some twenty thousand), and processes picking at once (test files side by side, the
 * nodes of `cohort up`) work through different stretches of the range.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [low, high] = listenerRange();
  const span = high - low + 1;
  cursor ??= randomInt(0, span);
  for (let i = 0; i < 50; i++) {
    const candidate = candidatePort(low, span, cursor++);
    if (candidate === undefined) continue;
    const port = await tryListen(host, candidate);
    if (port !== undefined) return port;
  }
  const port = await tryListen(host, 0);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}
