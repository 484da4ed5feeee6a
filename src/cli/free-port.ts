import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

/**
 * How long a port handed out stays claimed against other processes: one to two of these
 * windows. Long enough for the process it was meant for to start and bind it (a test may start
 * a node some while after writing its configuration), short enough that the range never fills.
 */
export const PORT_CLAIM_WINDOW_MS = 5 * 60_000;

/**
 * Where processes on this host record the ports they handed out, one empty file per port in a
 * folder per claim window. Picking in order from a random start keeps one process from handing
 * a port out twice, but two processes (test files side by side, a `cohort up` started by one of
 * them) can still arrive at the same stretch: the second found a port free that the first had
 * handed out and its node had not bound yet, and that node then failed with EADDRINUSE.
 */
export function defaultClaimsDir(): string {
  return join(tmpdir(), `cohort-port-claims-${process.getuid?.() ?? 'user'}`);
}

/** The claim window `now` falls in (the name of its folder). */
function claimWindow(now: number): number {
  return Math.floor(now / PORT_CLAIM_WINDOW_MS);
}

/**
 * Claims `port` for this process unless another claimed it in this claim window or the one
 * before: true when the claim is ours. Creating the file with O_EXCL makes the claim atomic
 * between processes. Without a usable claims folder (read-only, another user's) every port is
 * ours to take, as before claims existed: the bind check still holds.
 */
export function claimPort(dir: string, port: number, now: number): boolean {
  const window = claimWindow(now);
  const current = join(dir, String(window));
  try {
    statSync(join(dir, String(window - 1), String(port)));
    return false; // claimed in the window before: still fresh enough to respect
  } catch {
    // not claimed there
  }
  try {
    mkdirSync(current, { recursive: true, mode: 0o700 });
    closeSync(openSync(join(current, String(port)), 'wx', 0o600));
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EEXIST';
  }
}

/** Removes the claim windows older than the one before `now`'s (nobody reads them any more). */
export function forgetOldClaims(dir: string, now: number): void {
  const window = claimWindow(now);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (/^\d+$/.test(name) && Number(name) < window - 1) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

export interface PortPicker {
  /** A free port on `host` that no other picker on this host handed out lately. */
  next(host?: string): Promise<number>;
}

/**
 * Hands out ports below the ephemeral range in order from `start` (random by default), each
 * one bindable now and claimed in `claimsDir` so that no other process picks it meanwhile; never
 * one browsers refuse. After 50 candidates taken or claimed it asks the OS for one.
 */
export function createPortPicker(options: { claimsDir?: string; start?: number; now?: () => number } = {}): PortPicker {
  const dir = options.claimsDir ?? defaultClaimsDir();
  const now = options.now ?? Date.now;
  const [low, high] = listenerRange();
  const span = high - low + 1;
  let cursor = options.start ?? randomInt(0, span);
  let cleaned = false;
  return {
    async next(host = '127.0.0.1') {
      if (!cleaned) {
        cleaned = true;
        forgetOldClaims(dir, now());
      }
      for (let i = 0; i < 50; i++) {
        const candidate = candidatePort(low, span, cursor++);
        if (candidate === undefined) continue;
        const port = await tryListen(host, candidate);
        if (port !== undefined && claimPort(dir, port, now())) return port;
      }
      const port = await tryListen(host, 0);
      if (port === undefined) throw new Error(`no free port on ${host}`);
      return port;
    },
  };
}

let picker: PortPicker | undefined;

/**
 * A free TCP port on `host` for a listener another process will bind: the next one below the
 * ephemeral range that binds now and that no other process on this host handed out lately
 * (never one browsers refuse), or (after 50 tries) one from the OS.
 *
 * Ports are taken in order from a random starting point, not at random each time: between
 * the moment a port is found free and the moment its listener binds it, another caller could
 * be handed the same port. In order, this process never hands one out twice (until it has gone
 * round some twenty thousand); the claims keep other processes (test files side by side, the
 * nodes of `cohort up`) off the ports it handed out.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  picker ??= createPortPicker();
  return picker.next(host);
}
