import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { CIPHER_SLICE_BYTES, FRAME_OVERHEAD_BYTES, FrameOpener, FrameSealer } from '../../src/transport/secure-channel.js';

const key = Buffer.alloc(32, 7);
const otherKey = Buffer.alloc(32, 8);

/** The body of a sealed frame, without its length prefix. */
function body(frame: Buffer): Buffer {
  assert.equal(frame.readUInt32BE(0), frame.length - 4);
  return frame.subarray(4);
}

describe('FrameSealer / FrameOpener', () => {
  it('round-trips payloads in order, with the documented layout', () => {
    const sealer = new FrameSealer(key, 'shop');
    const opener = new FrameOpener(key, 'shop');
    for (let i = 0; i < 3; i++) {
      const payload = Buffer.from(`message ${i}`);
      const b = body(sealer.seal(payload));
      assert.equal(b.length, payload.length + FRAME_OVERHEAD_BYTES);
      assert.equal(b.readBigUInt64BE(0), BigInt(i), 'u64 sequence first');
      assert.deepEqual(opener.open(b), payload);
    }
    assert.equal(sealer.nextSequence, 3);
    assert.equal(opener.expectedSequence, 3);
  });

  it('uses nonce = 4 zero bytes + sequence and AAD = cluster id + sequence', () => {
    const b = body(new FrameSealer(key, 'shop').seal(Buffer.from('x')));
    const seq = b.subarray(0, 8);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.concat([Buffer.alloc(4), seq]));
    decipher.setAAD(Buffer.concat([Buffer.from('shop'), seq]));
    decipher.setAuthTag(b.subarray(b.length - 16));
    assert.equal(Buffer.concat([decipher.update(b.subarray(8, b.length - 16)), decipher.final()]).toString(), 'x');
  });

  it('drops a replayed frame without moving on, then accepts the next genuine one', () => {
    const sealer = new FrameSealer(key, 'shop');
    const opener = new FrameOpener(key, 'shop');
    const f0 = body(sealer.seal(Buffer.from('0')));
    const f1 = body(sealer.seal(Buffer.from('1')));
    assert.equal(opener.open(f0)?.toString(), '0');
    assert.equal(opener.open(f0), 'replayed');
    assert.equal(opener.open(f1)?.toString(), '1');
  });

  it('reports a frame that skips ahead as a gap, without moving on', () => {
    const sealer = new FrameSealer(key, 'shop');
    const opener = new FrameOpener(key, 'shop');
    const f0 = body(sealer.seal(Buffer.from('0')));
    const f1 = body(sealer.seal(Buffer.from('1')));
    assert.equal(opener.open(f1), 'gap');
    assert.equal(opener.expectedSequence, 0);
    assert.equal(opener.open(f0)?.toString(), '0');
  });

  it('rejects any flipped bit, another key, another cluster id and truncation', () => {
    const frame = body(new FrameSealer(key, 'shop').seal(Buffer.from('payload')));
    const opener = new FrameOpener(key, 'shop');
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const tampered = Buffer.from(frame);
      tampered[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(opener.open(tampered), 'rejected', `bit ${bit}`);
    }
    assert.equal(new FrameOpener(otherKey, 'shop').open(frame), 'rejected');
    assert.equal(new FrameOpener(key, 'shop2').open(frame), 'rejected');
    assert.equal(opener.open(frame.subarray(0, 10)), 'rejected');
    assert.equal(opener.open(frame.subarray(0, frame.length - 1)), 'rejected');
    // Rejected frames did not move the expected sequence on: the genuine frame still opens.
    assert.equal(opener.open(frame)?.toString(), 'payload');
  });

  it('never repeats a nonce: the same payload seals to different ciphertexts', () => {
    const sealer = new FrameSealer(key, 'shop');
    const a = body(sealer.seal(Buffer.from('same')));
    const b = body(sealer.seal(Buffer.from('same')));
    assert.notDeepEqual(a.subarray(8), b.subarray(8));
  });

  describe('a payload larger than a cipher slice (a partition transfer)', () => {
    const large = randomBytes(3 * CIPHER_SLICE_BYTES + 1234);

    /** `b` cut at `cuts` (offsets, ascending), as the socket's chunks would hand it over. */
    function cutAt(b: Buffer, cuts: number[]): Buffer[] {
      const parts: Buffer[] = [];
      let from = 0;
      for (const c of [...cuts, b.length]) {
        parts.push(b.subarray(from, c));
        from = c;
      }
      return parts;
    }

    it('seals in slices to the frame one encryption of the whole payload gives, in the documented layout', () => {
      const parts = new FrameSealer(key, 'shop').sealParts(large);
      assert.ok(parts.length > 2, `${parts.length} parts`);
      const frame = Buffer.concat(parts);
      const b = body(frame);
      assert.equal(b.length, large.length + FRAME_OVERHEAD_BYTES);
      const seq = b.subarray(0, 8);
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.concat([Buffer.alloc(4), seq]));
      decipher.setAAD(Buffer.concat([Buffer.from('shop'), seq]));
      decipher.setAuthTag(b.subarray(b.length - 16));
      assert.deepEqual(Buffer.concat([decipher.update(b.subarray(8, b.length - 16)), decipher.final()]), large);
      assert.deepEqual(new FrameSealer(key, 'shop').seal(large), frame, 'seal gives the same frame in one buffer');
    });

    it('opens a body handed over in parts, wherever they are cut (inside the sequence and the tag too)', () => {
      const sealer = new FrameSealer(key, 'shop');
      const opener = new FrameOpener(key, 'shop');
      const cutsList = [[], [3], [8, 9], [CIPHER_SLICE_BYTES - 1, CIPHER_SLICE_BYTES + 8], [100, 200_000], [large.length + 10], [large.length + 23], [1, 2, 3, 5, 70_000, 70_001, large.length + 9]];
      for (const cuts of cutsList) {
        const b = body(Buffer.concat(sealer.sealParts(large)));
        assert.deepEqual(opener.open(cutAt(b, cuts)), large, `cut at ${cuts.join(', ')}`);
      }
      // Small payloads in parts too.
      const small = body(sealer.seal(Buffer.from('small')));
      assert.equal((opener.open(cutAt(small, [2, 10, small.length - 3])) as Buffer).toString(), 'small');
    });

    it('rejects a large frame with a flipped bit in any slice, in the tag or the sequence, without moving on', () => {
      const b = body(new FrameSealer(key, 'shop').seal(large));
      const opener = new FrameOpener(key, 'shop');
      for (const at of [0, 7, 8, CIPHER_SLICE_BYTES + 8, 2 * CIPHER_SLICE_BYTES + 100, b.length - 17, b.length - 1]) {
        const tampered = Buffer.from(b);
        tampered[at]! ^= 0x10;
        assert.equal(opener.open(cutAt(tampered, [5, 100_000])), 'rejected', `byte ${at}`);
      }
      assert.equal(opener.open(cutAt(b, [5, 100_000]).slice(0, 2)), 'rejected', 'truncated');
      assert.deepEqual(opener.open(cutAt(b, [5, 100_000])), large);
    });
  });
});
