import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameDecoder, HANDSHAKE_MAX_FRAME_BYTES, MAX_FRAME_BYTES } from '../../src/transport/frame-codec.js';

function drain(decoder: FrameDecoder): string[] {
  const out: string[] = [];
  for (let f = decoder.next(); f !== undefined; f = decoder.next()) out.push(f.toString('utf8'));
  return out;
}

const frames = ['alpha', '', 'a somewhat longer frame body', 'z'];
const stream = Buffer.concat(frames.map((f) => encodeFrame(Buffer.from(f))));

describe('FrameDecoder', () => {
  it('decodes one frame delivered in one chunk', () => {
    const d = new FrameDecoder();
    d.push(encodeFrame(Buffer.from('hello')));
    assert.deepEqual(drain(d), ['hello']);
    assert.equal(d.bufferedBytes, 0);
  });

  it('decodes several frames merged into one chunk, including an empty one', () => {
    const d = new FrameDecoder();
    d.push(stream);
    assert.deepEqual(drain(d), frames);
    assert.equal(d.bufferedBytes, 0);
  });

  it('decodes frames split into one-byte chunks (length prefixes split too)', () => {
    const d = new FrameDecoder();
    const out: string[] = [];
    for (let i = 0; i < stream.length; i++) {
      d.push(stream.subarray(i, i + 1));
      out.push(...drain(d));
    }
    assert.deepEqual(out, frames);
    assert.equal(d.bufferedBytes, 0);
  });

  it('decodes the stream cut at every possible position', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder();
      d.push(stream.subarray(0, cut));
      const out = drain(d);
      d.push(stream.subarray(cut));
      out.push(...drain(d));
      assert.deepEqual(out, frames, `cut at ${cut}`);
    }
  });

  it('returns nothing until a frame is complete, then exactly it at the boundary', () => {
    const frame = encodeFrame(Buffer.from('boundary'));
    const d = new FrameDecoder();
    d.push(frame.subarray(0, 4)); // exactly the prefix
    assert.equal(d.next(), undefined);
    d.push(frame.subarray(4, frame.length - 1)); // one byte short
    assert.equal(d.next(), undefined);
    assert.equal(d.bufferedBytes, frame.length - 1);
    d.push(frame.subarray(frame.length - 1)); // exactly the end
    assert.equal(d.next()?.toString(), 'boundary');
    assert.equal(d.next(), undefined);
  });

  it('accepts a frame of exactly the limit and reports one byte over', () => {
    const ok = new FrameDecoder(16);
    ok.push(encodeFrame(Buffer.alloc(16, 1)));
    assert.equal(ok.next()?.length, 16);
    assert.equal(ok.oversizedLength, undefined);

    const over = new FrameDecoder(16);
    over.push(encodeFrame(Buffer.alloc(17, 1)));
    assert.equal(over.next(), undefined);
    assert.equal(over.oversizedLength, 17);
  });

  it('reports an oversized length prefix without allocating its body, and stops for good', () => {
    const d = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
    const prefix = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const allocations: number[] = [];
    const { allocUnsafe, alloc } = Buffer;
    Buffer.allocUnsafe = (size: number) => (allocations.push(size), allocUnsafe(size));
    Buffer.alloc = ((size: number, ...rest: unknown[]) => (allocations.push(size), alloc(size, ...(rest as [])))) as typeof Buffer.alloc;
    try {
      d.push(prefix.subarray(0, 2));
      assert.equal(d.next(), undefined);
      d.push(Buffer.concat([prefix.subarray(2), Buffer.from('some bytes that follow')]));
      assert.equal(d.next(), undefined);
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
      Buffer.alloc = alloc;
    }
    assert.equal(d.oversizedLength, 0xffff_ffff);
    assert.ok(allocations.every((n) => n <= HANDSHAKE_MAX_FRAME_BYTES), `allocated ${allocations.join(', ')}`);
    assert.equal(d.bufferedBytes, 0, 'buffered bytes are released');
    // A stream cannot resync after a bad length: later valid frames are ignored.
    d.push(encodeFrame(Buffer.from('later')));
    assert.equal(d.next(), undefined);
    assert.equal(d.bufferedBytes, 0);
  });

  it('applies a raised limit from the next frame on (the handshake-to-session switch)', () => {
    const d = new FrameDecoder(8);
    d.push(Buffer.concat([encodeFrame(Buffer.from('small')), encodeFrame(Buffer.alloc(100, 7))]));
    assert.equal(d.next()?.toString(), 'small');
    d.maxFrameBytes = MAX_FRAME_BYTES;
    assert.equal(d.next()?.length, 100);
    assert.equal(d.oversizedLength, undefined);
  });

  it('hands a frame over as views of the chunks it arrived in (nextParts), without copying', () => {
    const body = Buffer.from('a frame body split over several socket chunks');
    const framed = Buffer.concat([encodeFrame(body), encodeFrame(Buffer.from('next')), encodeFrame(Buffer.alloc(0))]);
    for (let cut = 0; cut <= framed.length; cut++) {
      for (const second of [cut + 1, cut + 7]) {
        const d = new FrameDecoder();
        const chunks = [framed.subarray(0, cut), framed.subarray(cut, Math.min(second, framed.length)), framed.subarray(Math.min(second, framed.length))];
        const out: string[] = [];
        for (const chunk of chunks) {
          d.push(chunk);
          for (let parts = d.nextParts(); parts !== undefined; parts = d.nextParts()) {
            assert.ok(parts.length >= 1);
            const within = (p: Buffer, c: Buffer): boolean => p.buffer === c.buffer && p.byteOffset >= c.byteOffset && p.byteOffset + p.length <= c.byteOffset + c.length;
            for (const p of parts) if (p.length > 0) assert.ok(chunks.some((c) => within(p, c)), 'a view of a pushed chunk');
            out.push(Buffer.concat(parts).toString());
          }
        }
        assert.deepEqual(out, [body.toString(), 'next', ''], `cut at ${cut} and ${second}`);
        assert.equal(d.bufferedBytes, 0);
      }
    }
  });

  it('rejects a nonsensical limit', () => {
    assert.throws(() => new FrameDecoder(0), RangeError);
    assert.throws(() => new FrameDecoder(2 ** 32), RangeError);
  });
});

describe('encodeFrame', () => {
  it('prefixes the body with its big-endian length', () => {
    assert.deepEqual([...encodeFrame(Buffer.from([9, 8, 7]))], [0, 0, 0, 3, 9, 8, 7]);
  });
});
