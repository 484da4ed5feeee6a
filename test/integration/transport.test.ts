import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { freePort } from '../../src/cli/free-port.js';
import { Secret } from '../../src/config/secret.js';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { isCohortError } from '../../src/core/errors.js';
import { encodeFrame } from '../../src/transport/frame-codec.js';
import { PROTOCOL_VERSION_MAX } from '../../src/transport/handshake.js';
import { rawExchange, startMitmProxy, type FrameHook } from '../helpers/mitm-proxy.js';
import { captureLogger, startTransport, WARN } from '../helpers/transports.js';
import { TEST_CLUSTER_ID } from '../helpers/node-config.js';

/** Asserts `promise` rejects with a CohortError of `code` (and returns it). */
async function rejectsWith(promise: Promise<unknown>, code: Parameters<typeof isCohortError>[1]) {
  try {
    await promise;
  } catch (err) {
    assert.ok(isCohortError(err, code), `expected ${code}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

describe('TcpTransport: messaging', () => {
  it('exchanges messages both ways on both channels, with proven identities', async (t) => {
    const a = await startTransport(t, 'node-a');
    const b = await startTransport(t, 'node-b');

    assert.equal(a.transport.protocolTo(b.address, 'control'), undefined, 'no protocol agreed before a connection opens');
    // Sent before any connection exists: queued, then flushed once the handshake completes.
    a.transport.send(b.address, 'control', Buffer.from('a->b control'));
    a.transport.send(b.address, 'bulk', Buffer.from('a->b bulk'));
    b.transport.send(a.address, 'control', Buffer.from('b->a control'));
    b.transport.send(a.address, 'bulk', Buffer.from('b->a bulk'));

    await b.recorder.waitFor(() => b.recorder.messages.length === 2, 'two messages at b');
    await a.recorder.waitFor(() => a.recorder.messages.length === 2, 'two messages at a');

    assert.deepEqual(b.recorder.texts('control'), ['a->b control']);
    assert.deepEqual(b.recorder.texts('bulk'), ['a->b bulk']);
    assert.deepEqual(a.recorder.texts('control'), ['b->a control']);
    assert.deepEqual(a.recorder.texts('bulk'), ['b->a bulk']);
    for (const m of b.recorder.messages) assert.deepEqual(m.from, { nodeId: 'node-a', address: a.address });
    for (const m of a.recorder.messages) assert.deepEqual(m.from, { nodeId: 'node-b', address: b.address });

    assert.deepEqual(await a.transport.connect(b.address), { nodeId: 'node-b', address: b.address });
    assert.deepEqual(await b.transport.connect(a.address, 'bulk'), { nodeId: 'node-a', address: a.address });
    // Both run this build: they agree on its newest wire protocol, per connection.
    assert.equal(a.transport.protocolTo(b.address, 'control'), PROTOCOL_VERSION_MAX);
    assert.equal(b.transport.protocolTo(a.address, 'bulk'), PROTOCOL_VERSION_MAX);

    const sa = a.transport.stats();
    assert.equal(sa.framesSent, 2);
    assert.equal(sa.framesReceived, 2);
    assert.ok(sa.bytesSent > 0 && sa.bytesReceived > 0);
    assert.equal(sa.framesRejected + sa.framesOutOfSequence + sa.framesOversized + sa.sendsDropped + sa.handshakesRefused, 0);
  });

  it('delivers 1,000 messages in order', async (t) => {
    const a = await startTransport(t, 'node-a');
    const b = await startTransport(t, 'node-b');
    const expected = Array.from({ length: 1000 }, (_, i) => `message ${i}`);
    await a.transport.connect(b.address);
    for (const m of expected) a.transport.send(b.address, 'control', Buffer.from(m));
    await b.recorder.waitFor(() => b.recorder.messages.length >= 1000, '1000 messages');
    assert.deepEqual(b.recorder.texts(), expected);
    assert.equal(b.transport.stats().framesReceived, 1000);
  });

  it('carries a large bulk payload split across many TCP chunks', async (t) => {
    const a = await startTransport(t, 'node-a');
    const b = await startTransport(t, 'node-b');
    const big = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    a.transport.send(b.address, 'bulk', big);
    await b.recorder.waitFor(() => b.recorder.messages.length === 1, 'the bulk payload');
    assert.ok(b.recorder.messages[0]!.payload.equals(big));
  });

  it('drops (and counts) a message larger than the frame limit', async (t) => {
    const a = await startTransport(t, 'node-a', { maxFrameBytes: 1024 });
    const b = await startTransport(t, 'node-b');
    a.transport.send(b.address, 'control', Buffer.alloc(2000));
    a.transport.send(b.address, 'control', Buffer.from('small'));
    await b.recorder.waitFor(() => b.recorder.messages.length === 1, 'the small message');
    assert.deepEqual(b.recorder.texts(), ['small']);
    assert.equal(a.transport.stats().framesOversized, 1);
  });

  it('bounds the bytes a connection holds unsent, queued or buffered, and counts the drops', async (t) => {
    // Each 40-byte payload becomes a 68-byte frame: two fit in 150 bytes, a third does not.
    const a = await startTransport(t, 'node-a', { maxQueuedBytesPerConnection: 150 });
    const b = await startTransport(t, 'node-b');
    for (let i = 0; i < 5; i++) a.transport.send(b.address, 'control', Buffer.alloc(40, 0x30 + i));
    await b.recorder.waitFor(() => b.recorder.messages.length === 2, 'the two queued messages');
    assert.equal(a.transport.stats().sendsDropped, 3);
    // Open now: a burst in one tick sits in the socket's buffer until the tick ends.
    for (let i = 5; i < 10; i++) a.transport.send(b.address, 'control', Buffer.alloc(40, 0x30 + i));
    await b.recorder.waitFor(() => b.recorder.messages.length === 4, 'two more');
    assert.equal(a.transport.stats().sendsDropped, 6);
    assert.deepEqual(b.recorder.texts().map((m) => m[0]), ['0', '1', '5', '6']);
  });

  it('rejects start with NODE_BIND_FAILED when the address is taken', async (t) => {
    const a = await startTransport(t, 'node-a');
    const [host, port] = a.address.split(':');
    const clash = new TcpTransport({
      clusterId: TEST_CLUSTER_ID, nodeId: 'clash', bind: { host: host!, port: Number(port) },
      secret: new Secret('x'), clock: systemClock, logger: silentLogger(),
    });
    t.after(() => clash.close());
    const err = await rejectsWith(clash.start(a.recorder), 'NODE_BIND_FAILED');
    assert.match((err as Error).message, new RegExp(a.address));
  });
});

describe('TcpTransport: handshake refusals', () => {
  it('refuses another cluster id: the dialer is told why, the listener logs one line', async (t) => {
    const log = captureLogger();
    const a = await startTransport(t, 'node-a', { clusterId: 'a', logger: log.logger });
    const b = await startTransport(t, 'node-b', { clusterId: 'b' });

    const err = await rejectsWith(b.transport.connect(a.address), 'TRANSPORT_REFUSED_CLUSTER_ID');
    assert.match((err as Error).message, /this node belongs to cluster "a", not "b"/);
    assert.deepEqual(b.recorder.refusals, [{ address: a.address, code: 'cluster-id-mismatch', message: 'this node belongs to cluster "a", not "b"' }]);
    assert.deepEqual(b.recorder.peerDowns, []);

    // A second attempt is refused and counted, but not logged again.
    await rejectsWith(b.transport.connect(a.address), 'TRANSPORT_REFUSED_CLUSTER_ID');
    assert.equal(a.transport.stats().handshakesRefused, 2);
    const warnings = log.lines.filter((l) => l.level >= WARN);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    // It proved the secret, so the listener names it.
    assert.match(warnings[0]!.msg, new RegExp(`refused connection from 127\\.0\\.0\\.1:\\d+ \\(node node-b at ${b.address}\\): wrong cluster id "b"`));
  });

  it('refuses a wrong secret without logging it', async (t) => {
    const log = captureLogger();
    const a = await startTransport(t, 'node-a', { secret: 'the-right-secret', logger: log.logger });
    const b = await startTransport(t, 'node-b', { secret: 'the-wrong-secret' });
    b.transport.send(a.address, 'control', Buffer.from('never delivered'));
    await rejectsWith(b.transport.connect(a.address), 'TRANSPORT_REFUSED_SECRET');
    await b.recorder.waitFor(() => b.recorder.refusals.length >= 1, 'onRefused');
    assert.equal(b.recorder.refusals[0]!.code, 'secret-mismatch');
    assert.equal(a.recorder.messages.length, 0);
    assert.equal(b.transport.stats().sendsDropped, 1);
    const warnings = log.lines.filter((l) => l.level >= WARN);
    assert.equal(warnings.length, 1);
    // What an unproven caller claims is never repeated: only the socket's address is logged.
    assert.match(warnings[0]!.msg, /^refused connection from 127\.0\.0\.1:\d+: wrong cluster secret$/);
    assert.ok(!log.raw.join('').includes('node-b'));
    const everything = log.raw.join('');
    assert.ok(!everything.includes('the-right-secret') && !everything.includes('the-wrong-secret'));
  });

  it('accepts a previous secret during rotation, whichever node moved first, at the first attempt and with nothing logged', async (t) => {
    const logA = captureLogger();
    const logB = captureLogger();
    const a = await startTransport(t, 'node-a', { secret: 'new-secret', previousSecrets: ['old-secret'], logger: logA.logger });
    const b = await startTransport(t, 'node-b', { secret: 'old-secret', logger: logB.logger });
    // B (old key) dials A (new key, old still accepted).
    assert.deepEqual(await b.transport.connect(a.address), { nodeId: 'node-a', address: a.address });
    // A (new key) dials B (old key only): refused with the new key, A retries with the old one.
    a.transport.send(b.address, 'control', Buffer.from('rotated'));
    b.transport.send(a.address, 'control', Buffer.from('still old'));
    await b.recorder.waitFor(() => b.recorder.messages.length === 1, 'a message at b');
    await a.recorder.waitFor(() => a.recorder.messages.length === 1, 'a message at a');
    assert.deepEqual(b.recorder.texts(), ['rotated']);
    assert.deepEqual(a.recorder.texts(), ['still old']);
    assert.deepEqual(a.recorder.refusals, []);
    assert.deepEqual(b.recorder.refusals, []);
    assert.equal(a.transport.stats().handshakesRefused + b.transport.stats().handshakesRefused, 0);
    assert.deepEqual([...logA.lines, ...logB.lines].filter((l) => l.level >= WARN), []);
  });

  it('rejects with PEER_UNREACHABLE refused, and reports onPeerDown, when nothing listens', async (t) => {
    const a = await startTransport(t, 'node-a');
    const closed = `127.0.0.1:${await freePort()}`;
    const err = await rejectsWith(a.transport.connect(closed), 'TRANSPORT_PEER_UNREACHABLE');
    assert.equal((err as { details?: { reason?: string } }).details?.reason, 'refused');
    await a.recorder.waitFor(() => a.recorder.peerDowns.length === 1, 'onPeerDown');
    assert.deepEqual(a.recorder.peerDowns, [{ address: closed, reason: 'refused' }]);
    // No blacklisting: the next attempt tries again.
    await rejectsWith(a.transport.connect(closed), 'TRANSPORT_PEER_UNREACHABLE');
    assert.equal(a.recorder.peerDowns.length, 2);
  });

  it('times out a handshake the peer never answers', async (t) => {
    const silent = createServer(() => {});
    const sockets = new Set<import('node:net').Socket>();
    silent.on('connection', (s) => (sockets.add(s), s.on('error', () => {})));
    await new Promise<void>((r) => silent.listen({ host: '127.0.0.1', port: 0 }, r));
    t.after(() => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), silent.close(() => r()))));
    const address = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    const a = await startTransport(t, 'node-a', { handshakeTimeoutMs: 150 });
    const err = await rejectsWith(a.transport.connect(address), 'TRANSPORT_PEER_UNREACHABLE');
    assert.equal((err as { details?: { reason?: string } }).details?.reason, 'timeout');
    assert.deepEqual(a.recorder.peerDowns, [{ address, reason: 'timeout' }]);
  });
});

describe('TcpTransport: peers going away', () => {
  it('reports onPeerDown closed on both sides when a peer closes', async (t) => {
    const a = await startTransport(t, 'node-a');
    const b = await startTransport(t, 'node-b');
    await a.transport.connect(b.address); // a → b, outbound at a, inbound at b
    await b.transport.connect(a.address); // b → a
    await a.transport.close();
    await b.recorder.waitFor(() => b.recorder.peerDowns.length >= 2, 'two hints at b');
    // One for b's outbound connection to a, one for a's connection into b.
    assert.deepEqual(b.recorder.peerDowns, [
      { address: a.address, reason: 'closed' },
      { address: a.address, reason: 'closed' },
    ]);
    assert.deepEqual(a.recorder.peerDowns, [], 'a closing itself reports nothing');
  });

  it('opens a fresh connection on the next send after a failure', async (t) => {
    const a = await startTransport(t, 'node-a');
    const b = await startTransport(t, 'node-b');
    await a.transport.connect(b.address);
    b.transport.disconnect(a.address); // b closes the inbound connection from a
    await a.recorder.waitFor(() => a.recorder.peerDowns.length === 1, 'a sees its connection close');
    assert.deepEqual(a.recorder.peerDowns, [{ address: b.address, reason: 'closed' }]);
    a.transport.send(b.address, 'control', Buffer.from('after reconnect'));
    await b.recorder.waitFor(() => b.recorder.messages.length === 1, 'the message');
    assert.deepEqual(b.recorder.texts(), ['after reconnect']);
  });
});

describe('TcpTransport: hostile input', () => {
  it('survives garbage, oversized length prefixes and a replayed session, and keeps serving', async (t) => {
    const log = captureLogger();
    const a = await startTransport(t, 'node-a', { logger: log.logger, handshakeTimeoutMs: 500 });
    const b = await startTransport(t, 'node-b');
    const proxy = await startMitmProxy(t, a.address);

    // A genuine session through the proxy, captured, to replay later.
    b.transport.send(proxy.address, 'control', Buffer.from('genuine'));
    await a.recorder.waitFor(() => a.recorder.messages.length === 1, 'the genuine message');
    const captured = Buffer.concat(proxy.captured.toListener);

    const before = a.transport.stats();
    // HTTP: "GET " read as a length prefix is ~1.2 GB, far over the 4 KiB handshake limit.
    await rawExchange(a.address, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    // The largest possible length prefix.
    await rawExchange(a.address, [Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])]);
    assert.equal(a.transport.stats().framesOversized, before.framesOversized + 2);
    const oversizeWarnings = log.lines.filter((l) => l.level >= WARN && /exceeds the 4096-byte limit/.test(l.msg));
    assert.equal(oversizeWarnings.length, 1, 'one warning per remote host, however often it tries');

    // Well-framed garbage: refused as not a handshake.
    const refusal = await rawExchange(a.address, [encodeFrame(Buffer.from('\x07not a cohort message'))]);
    assert.equal(a.transport.stats().handshakesRefused, before.handshakesRefused + 1);
    assert.ok(refusal.received.length > 0, 'the listener answered REFUSE');

    // The whole captured dialer stream replayed: the listener's fresh nonce makes the old
    // proof worthless, so the handshake is refused and nothing is delivered.
    await rawExchange(a.address, [captured]);
    assert.equal(a.transport.stats().handshakesRefused, before.handshakesRefused + 2);
    assert.equal(a.recorder.messages.length, 1);

    // A silent client is cut off by the handshake timeout.
    await rawExchange(a.address, []);

    // Still serving.
    b.transport.send(a.address, 'control', Buffer.from('after the attacks'));
    await a.recorder.waitFor(() => a.recorder.messages.length === 2, 'a message after the attacks');
    assert.deepEqual(a.recorder.texts(), ['genuine', 'after the attacks']);
    assert.deepEqual(a.recorder.peerDowns, [], 'unauthenticated connections are no peer-down hints');
    assert.ok(log.lines.every((l) => !l.msg.includes('genuine')));
  });

  /** Runs b → proxy → a with `hook` applied to b's sealed frames (index ≥ 2 on toListener). */
  async function throughProxy(t: TestContext, hook: (index: number, frame: Buffer, forward: (b: Buffer) => void) => void) {
    const log = captureLogger();
    const a = await startTransport(t, 'node-a', { logger: log.logger });
    const b = await startTransport(t, 'node-b');
    const proxy = await startMitmProxy(t, a.address);
    const frameHook: FrameHook = (direction, index, frame, forward) => {
      if (direction === 'toListener' && index >= 2) hook(index - 2, frame, forward);
      else forward(frame);
    };
    proxy.setHook(frameHook);
    await b.transport.connect(proxy.address);
    return { a, b, proxy, log };
  }

  it('drops a duplicated (replayed) frame and delivers every genuine one exactly once', async (t) => {
    const { a, b, proxy, log } = await throughProxy(t, (i, frame, forward) => {
      forward(frame);
      if (i === 1) forward(frame);
    });
    for (let i = 0; i < 4; i++) b.transport.send(proxy.address, 'control', Buffer.from(`m${i}`));
    await a.recorder.waitFor(() => a.recorder.messages.length === 4, 'four messages');
    assert.deepEqual(a.recorder.texts(), ['m0', 'm1', 'm2', 'm3']);
    assert.equal(a.transport.stats().framesOutOfSequence, 1);
    assert.equal(log.lines.filter((l) => l.level >= WARN).length, 1);
  });

  it('drops a tampered frame and still delivers the genuine one', async (t) => {
    const { a, b, proxy, log } = await throughProxy(t, (i, frame, forward) => {
      if (i === 1 || i === 2) {
        const flipped = Buffer.from(frame);
        flipped[flipped.length - 20]! ^= 0x01; // a ciphertext bit
        forward(flipped);
      }
      forward(frame);
    });
    for (let i = 0; i < 4; i++) b.transport.send(proxy.address, 'control', Buffer.from(`m${i}`));
    await a.recorder.waitFor(() => a.recorder.messages.length === 4, 'four messages');
    assert.deepEqual(a.recorder.texts(), ['m0', 'm1', 'm2', 'm3']);
    assert.equal(a.transport.stats().framesRejected, 2);
    assert.equal(log.lines.filter((l) => l.level >= WARN).length, 1, 'one warning per connection');
  });

  it('drops reordered frames, closes the desynchronised connection, and recovers on the next send', async (t) => {
    let held: Buffer | undefined;
    const { a, b, proxy } = await throughProxy(t, (i, frame, forward) => {
      if (i === 1) held = frame; // hold m1 back...
      else forward(frame);
      if (i === 2) forward(held!); // ...and let it go after m2
    });
    for (let i = 0; i < 4; i++) b.transport.send(proxy.address, 'control', Buffer.from(`m${i}`));
    // m2 arrives while m1 is expected: a gap, so a closes the connection; b is told.
    await b.recorder.waitFor(() => b.recorder.peerDowns.length === 1, 'b sees the connection close');
    assert.deepEqual(b.recorder.peerDowns, [{ address: proxy.address, reason: 'closed' }]);
    assert.equal(a.transport.stats().framesOutOfSequence, 1);
    // Never a duplicate, never out of order.
    assert.deepEqual(a.recorder.texts(), ['m0']);
    b.transport.send(proxy.address, 'control', Buffer.from('m4'));
    await a.recorder.waitFor(() => a.recorder.messages.length === 2, 'the message after reconnecting');
    assert.deepEqual(a.recorder.texts(), ['m0', 'm4']);
    assert.equal(proxy.connections(), 2);
  });
});
