import { connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

/** Which way a frame travels through the proxy: dialer → listener, or back. */
export type Direction = 'toListener' | 'toDialer';

/**
 * Decides what the proxy forwards for one frame (length prefix included). `index` counts
 * frames per direction per connection from 0; on `toListener`, frames 0 and 1 are HELLO and
 * PROOF, so sealed frames start at index 2. Call `forward` zero or more times, now or later.
 */
export type FrameHook = (direction: Direction, index: number, frame: Buffer, forward: (bytes: Buffer) => void) => void;

export interface MitmProxy {
  /** `host:port` to dial instead of the listener. */
  address: string;
  /** Every byte the proxy received, per direction, in order (all connections). */
  captured: Record<Direction, Buffer[]>;
  /** Replaces the frame hook (default: forward unchanged). */
  setHook(hook: FrameHook): void;
  /** Number of connections the proxy has accepted. */
  connections(): number;
  close(): Promise<void>;
}

/** Splits a byte stream into frames at their 4-byte big-endian length prefixes. */
class FrameSplitter {
  private pending = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    while (this.pending.length >= 4) {
      const total = 4 + this.pending.readUInt32BE(0);
      if (this.pending.length < total) break;
      frames.push(Buffer.from(this.pending.subarray(0, total)));
      this.pending = this.pending.subarray(total);
    }
    return frames;
  }
}

/**
 * A man-in-the-middle TCP proxy between a dialer and a real listener, for tests that tamper
 * with, duplicate, reorder or simply record what crosses the wire. Closed when the test ends.
 */
export async function startMitmProxy(t: Pick<TestContext, 'after'>, listenerAddress: string): Promise<MitmProxy> {
  const [host, portText] = [listenerAddress.slice(0, listenerAddress.lastIndexOf(':')), listenerAddress.slice(listenerAddress.lastIndexOf(':') + 1)];
  const captured: Record<Direction, Buffer[]> = { toListener: [], toDialer: [] };
  let hook: FrameHook = (_d, _i, frame, forward) => forward(frame);
  const sockets = new Set<Socket>();
  let accepted = 0;

  const server: Server = createServer((dialerSide) => {
    accepted++;
    const listenerSide = connect({ host, port: Number(portText) });
    for (const s of [dialerSide, listenerSide]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        // Either side going away takes the other with it, like a real path would.
        dialerSide.destroy();
        listenerSide.destroy();
      });
    }
    const pipe = (direction: Direction, from: Socket, to: Socket) => {
      const splitter = new FrameSplitter();
      let index = 0;
      from.on('data', (chunk: Buffer) => {
        captured[direction].push(Buffer.from(chunk));
        for (const frame of splitter.push(chunk)) {
          hook(direction, index++, frame, (bytes) => {
            if (!to.destroyed) to.write(bytes);
          });
        }
      });
    };
    pipe('toListener', dialerSide, listenerSide);
    pipe('toDialer', listenerSide, dialerSide);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
    return closing;
  };
  t.after(close);
  return {
    address: `127.0.0.1:${port}`,
    captured,
    setHook: (h) => (hook = h),
    connections: () => accepted,
    close,
  };
}

/** Connects a raw TCP client, writes `bytes`, and resolves when the other end closes it. */
export function rawExchange(address: string, bytes: Buffer[]): Promise<{ received: Buffer }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) }, () => {
      for (const b of bytes) socket.write(b);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {}); // a reset is an acceptable way for the listener to hang up
    socket.on('close', () => resolve({ received: Buffer.concat(chunks) }));
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error(`the listener at ${address} did not close the raw connection within 5 s`));
    });
  });
}
