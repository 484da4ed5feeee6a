// An outsider on the cluster port: what it learns before proving the secret (nothing about the
// cluster or the node), and how much log a flood of refused handshakes can write (bounded).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { encodeFrame, FrameDecoder } from '../../src/transport/frame-codec.js';
import { createNonce, decodeHandshakeMessage, encodeHandshakeMessage, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, type HandshakeMessage } from '../../src/transport/handshake.js';
import { captureLogger, startTransport, WARN } from '../helpers/transports.js';

const CLUSTER_ID = 'discreet-cluster-Zq81';
const NODE_ID = 'hidden-node-4471';

/** Plays an outsider: sends `messages` in turn, each after the listener's answer, and returns every byte received. */
function probe(address: string, script: (answer: HandshakeMessage | undefined) => HandshakeMessage | undefined): Promise<Buffer> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const received: Buffer[] = [];
    const decoder = new FrameDecoder(4096);
    const socket = connect({ host, port });
    const deadline = setTimeout(() => socket.destroy(), 5000);
    socket.on('connect', () => {
      const first = script(undefined);
      if (first) socket.write(encodeFrame(encodeHandshakeMessage(first)));
    });
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      decoder.push(chunk);
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
        const next = script(decodeHandshakeMessage(frame));
        if (next) socket.write(encodeFrame(encodeHandshakeMessage(next)));
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(deadline);
      resolve(Buffer.concat(received));
    });
    socket.on('timeout', () => reject(new Error('timeout')));
  });
}

function helloThenBadProof(proto: number) {
  return (answer: HandshakeMessage | undefined): HandshakeMessage | undefined => {
    if (answer === undefined) return { type: 'hello', protoMin: proto, protoMax: proto, channel: 'control', nonce: createNonce() };
    if (answer.type === 'challenge') return { type: 'proof', proofs: [{ mac: createNonce(), sealed: Buffer.alloc(64, 7) }] };
    return undefined;
  };
}

describe('The cluster port before the secret is proven', () => {
  it('tells a caller with a wrong proof neither the cluster id nor the node id nor its address', async (t) => {
    const a = await startTransport(t, NODE_ID, { clusterId: CLUSTER_ID });
    const answers: HandshakeMessage[] = [];
    const bytes = await probe(a.address, (answer) => {
      if (answer) answers.push(answer);
      return helloThenBadProof(2)(answer);
    });
    assert.deepEqual(answers.map((m) => m.type), ['challenge', 'refuse']);
    const refusal = answers[1] as Extract<HandshakeMessage, { type: 'refuse' }>;
    assert.equal(refusal.code, 'secret-mismatch');
    const port = a.address.slice(a.address.lastIndexOf(':') + 1);
    for (const needle of [CLUSTER_ID, NODE_ID, `:${port}`]) {
      for (const encoded of [Buffer.from(needle), Buffer.from(Buffer.from(needle).toString('base64'))]) {
        assert.equal(bytes.indexOf(encoded), -1, `"${needle}" was told to an outsider`);
      }
    }
    assert.equal(a.recorder.messages.length, 0);
  });

  it('answers a caller of another protocol version with the versions alone', async (t) => {
    const a = await startTransport(t, NODE_ID, { clusterId: CLUSTER_ID });
    const answers: HandshakeMessage[] = [];
    const bytes = await probe(a.address, (answer) => {
      if (answer) answers.push(answer);
      return answer === undefined ? helloThenBadProof(1)(undefined) : undefined;
    });
    assert.deepEqual(answers, [{ type: 'refuse', code: 'protocol-mismatch', message: `no common cluster-protocol version: this node speaks ${PROTOCOL_VERSION_MIN}-${PROTOCOL_VERSION_MAX}, the connecting node 1-1` }]);
    assert.equal(bytes.indexOf(Buffer.from(CLUSTER_ID)), -1);
    assert.equal(bytes.indexOf(Buffer.from(NODE_ID)), -1);
  });

  it('writes a bounded number of lines for 10,000 refused handshakes', async (t) => {
    const log = captureLogger();
    const a = await startTransport(t, NODE_ID, { clusterId: CLUSTER_ID, logger: log.logger });
    const total = 10_000;
    const parallel = 100;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        await probe(a.address, helloThenBadProof(next % 2 === 0 ? 2 : 1));
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: parallel }, worker));
    await new Promise((r) => setTimeout(r, 200));
    const minutes = Math.ceil((performance.now() - started) / 60_000);
    assert.equal(a.transport.stats().handshakesRefused, total);
    const warnings = log.lines.filter((l) => l.level >= WARN);
    console.log(`10,000 refused handshakes (half a wrong proof, half another protocol version) wrote ${warnings.length} warning lines in ${minutes} minute(s)`);
    // One line per source host and reason a minute, and one line a minute summing the rest:
    // here one host, two reasons (a busy machine may take more than a minute for the 10,000).
    assert.ok(warnings.length <= 3 * minutes + 1, JSON.stringify(warnings.slice(0, 10)));
  });
});
