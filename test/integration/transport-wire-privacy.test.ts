import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMitmProxy } from '../helpers/mitm-proxy.js';
import { captureLogger, startTransport } from '../helpers/transports.js';

const MARKER = 'PLAINTEXT-MARKER-12345';
const SECRET = 'wire-privacy-secret-Qx9!';

/** Every encoding of `text` a careless implementation might put on the wire. */
function encodings(text: string): Buffer[] {
  const utf8 = Buffer.from(text, 'utf8');
  return [utf8, Buffer.from(text, 'utf16le'), Buffer.from(utf8.toString('base64')), Buffer.from(utf8.toString('hex'))];
}

describe('TcpTransport: no plaintext on the wire', () => {
  it('carries neither message contents nor the secret in clear, either way, on either channel', async (t) => {
    const logA = captureLogger();
    const logB = captureLogger();
    const a = await startTransport(t, 'node-a', { secret: SECRET, logger: logA.logger });
    const b = await startTransport(t, 'node-b', { secret: SECRET, logger: logB.logger });
    const toA = await startMitmProxy(t, a.address);
    const toB = await startMitmProxy(t, b.address);

    const payload = (from: string) => Buffer.from(`${from}: ${MARKER} and the secret itself: ${SECRET}`);
    for (const channel of ['control', 'bulk'] as const) {
      b.transport.send(toA.address, channel, payload(`b ${channel}`));
      a.transport.send(toB.address, channel, payload(`a ${channel}`));
    }
    await a.recorder.waitFor(() => a.recorder.messages.length === 2, 'two messages at a');
    await b.recorder.waitFor(() => b.recorder.messages.length === 2, 'two messages at b');
    // The payloads did cross, and arrived intact.
    assert.ok(a.recorder.texts().every((m) => m.includes(MARKER) && m.includes(SECRET)));
    assert.ok(b.recorder.texts().every((m) => m.includes(MARKER) && m.includes(SECRET)));

    const wire = Buffer.concat([...toA.captured.toListener, ...toA.captured.toDialer, ...toB.captured.toListener, ...toB.captured.toDialer]);
    assert.ok(wire.length > 4 * payload('x').length, 'traffic was captured');
    for (const needle of [...encodings(MARKER), ...encodings(SECRET)]) {
      assert.equal(wire.indexOf(needle), -1, `"${needle.toString()}" appears on the wire`);
    }

    // Nor in the logs, at debug level.
    const logs = [...logA.raw, ...logB.raw].join('');
    assert.ok(!logs.includes(MARKER) && !logs.includes(SECRET));
  });
});
