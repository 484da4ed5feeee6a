import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { Secret } from '../../src/config/secret.js';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { TcpTransport, type TcpTransportOptions } from '../../src/transport/tcp-transport.js';
import type { Channel, PeerDownReason, PeerIdentity, RefusalCode, TransportHandlers } from '../../src/transport/transport.js';
import { TEST_CLUSTER_ID } from './node-config.js';

export const TRANSPORT_TEST_SECRET = 'transport-test-secret-7f3a9c';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A pino logger at debug level whose lines are parsed into `lines`, to assert on. */
export function captureLogger(): { logger: Logger; lines: LogLine[]; raw: string[] } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(s: string) {
        raw.push(s);
        lines.push(JSON.parse(s) as LogLine);
      },
    },
  );
  return { logger, lines, raw };
}

export const WARN = 40;

export interface ReceivedMessage {
  from: PeerIdentity;
  channel: Channel;
  payload: Buffer;
}

/** Records what a transport reports and lets a test wait for a condition on it, event-driven. */
export class Recorder implements TransportHandlers {
  readonly messages: ReceivedMessage[] = [];
  readonly peerDowns: Array<{ address: string; reason: PeerDownReason }> = [];
  readonly refusals: Array<{ address: string; code: RefusalCode; message: string }> = [];
  private readonly watchers = new Set<() => void>();

  onMessage(from: PeerIdentity, channel: Channel, payload: Uint8Array): void {
    this.messages.push({ from, channel, payload: Buffer.from(payload) });
    this.notify();
  }

  onPeerDown(address: string, reason: PeerDownReason): void {
    this.peerDowns.push({ address, reason });
    this.notify();
  }

  onRefused(address: string, code: RefusalCode, message: string): void {
    this.refusals.push({ address, code, message });
    this.notify();
  }

  /** Payloads received so far, as strings. */
  texts(channel?: Channel): string[] {
    return this.messages.filter((m) => channel === undefined || m.channel === channel).map((m) => m.payload.toString('utf8'));
  }

  /** Resolves once `condition` holds (checked now and after every event); rejects after `timeoutMs`. */
  waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    return waitUntil(this.watchers, condition, what, timeoutMs);
  }

  /** Re-checks waiters; for conditions on things other than handler calls (stats). */
  notify(): void {
    for (const w of [...this.watchers]) w();
  }
}

export function waitUntil(watchers: Set<() => void>, condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  if (condition()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!condition()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      watchers.delete(check);
    };
    watchers.add(check);
  });
}

/** Polls `condition` every few ms: for state no event announces (transport counters). */
export async function eventually(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface StartedTransport {
  transport: TcpTransport;
  recorder: Recorder;
  address: string;
}

/**
 * A started TcpTransport on 127.0.0.1 (port 0: the OS picks a free one), closed when the test
 * ends. Defaults: cluster TEST_CLUSTER_ID (one per test process), secret TRANSPORT_TEST_SECRET, silent logger.
 */
export async function startTransport(
  t: Pick<TestContext, 'after'>,
  nodeId: string,
  options: Partial<Omit<TcpTransportOptions, 'secret' | 'previousSecrets'>> & { secret?: string; previousSecrets?: string[] } = {},
): Promise<StartedTransport> {
  const { secret, previousSecrets, ...rest } = options;
  const transport = new TcpTransport({
    clusterId: TEST_CLUSTER_ID,
    nodeId,
    bind: { host: '127.0.0.1', port: 0 },
    clock: systemClock,
    logger: silentLogger(),
    ...rest,
    secret: new Secret(secret ?? TRANSPORT_TEST_SECRET),
    previousSecrets: (previousSecrets ?? []).map((s) => new Secret(s)),
  });
  const recorder = new Recorder();
  t.after(() => transport.close());
  await transport.start(recorder);
  return { transport, recorder, address: transport.localAddress };
}
