/**
 * Authenticated encryption of the frames that follow the handshake.
 *
 * Frame body (inside the length prefix):
 *
 *   [u64 big-endian sequence][AES-256-GCM ciphertext][16-byte tag]
 *
 * - GCM nonce (12 bytes): 4 zero bytes + the 8-byte sequence.
 * - Additional authenticated data: the cluster id bytes + the 8-byte sequence, so a frame is
 *   bound to its cluster and position even though the sequence travels in clear.
 * - Sequence numbers start at 0 on each direction of each connection and grow by one per
 *   frame.
 *
 * Why this never reuses a (key, nonce) pair, which would break GCM: the key is unique to one
 * direction of one connection (derived from both sides' fresh nonces, see
 * `deriveSessionKeys`), and within it the nonce is the sequence counter, which only ever
 * increments and is never reset; a sealer refuses to go past 2^53 - 1 frames rather than wrap
 * (at 50,000 frames/s that is over 5,000 years).
 *
 * Why sequence numbers: TCP delivers bytes in order, so an honest stream always carries the
 * next expected number. A frame that authenticates but carries another number was replayed
 * (lower) or something before it was removed or held back (higher): either way someone on the
 * path is interfering, and the frame is dropped.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { LENGTH_PREFIX_BYTES } from './frame-codec.js';

export const SEQUENCE_BYTES = 8;
export const TAG_BYTES = 16;
/** Bytes a sealed frame body adds to its payload. */
export const FRAME_OVERHEAD_BYTES = SEQUENCE_BYTES + TAG_BYTES;

/**
 * A payload larger than this is encrypted and decrypted a slice at a time. Node's cipher
 * returns each update's output in a buffer of its own (and copies it once more to trim it):
 * for a frame of megabytes (a partition transfer), that meant two more buffers of its size,
 * each of which the kernel must hand out as fresh zeroed pages, plus a copy of the whole frame
 * into the frame buffer. Slices of this size come from memory the allocator reuses, and the
 * frame leaves as its slices (one `writev`: connection.ts). GCM is a stream mode: the
 * ciphertext and tag are the same however the payload is sliced.
 */
export const CIPHER_SLICE_BYTES = 64 * 1024;

const CIPHER = 'aes-256-gcm';
const GCM_NONCE_BYTES = 12;
const TWO_POW_32 = 2 ** 32;
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

/**
 * Holds the per-direction nonce and AAD buffers, rewritten in place for every frame so sealing
 * and opening allocate nothing besides the cipher and the output.
 */
abstract class DirectionState {
  /** 4 zero bytes + the sequence in bytes 4..12. */
  protected readonly nonce = Buffer.alloc(GCM_NONCE_BYTES);
  /** Cluster id bytes + the sequence in the last 8 bytes. */
  protected readonly aad: Buffer;

  constructor(
    protected readonly key: Buffer,
    clusterId: string,
  ) {
    if (key.length !== 32) throw new RangeError('an AES-256-GCM key is 32 bytes');
    const id = Buffer.from(clusterId, 'utf8');
    this.aad = Buffer.alloc(id.length + SEQUENCE_BYTES);
    id.copy(this.aad, 0);
  }

  protected setSequence(hi: number, lo: number): void {
    this.nonce.writeUInt32BE(hi, 4);
    this.nonce.writeUInt32BE(lo, 8);
    this.aad.writeUInt32BE(hi, this.aad.length - 8);
    this.aad.writeUInt32BE(lo, this.aad.length - 4);
  }
}

/** Seals outgoing frames for one direction of one connection. */
export class FrameSealer extends DirectionState {
  private sequence = 0;

  /** The sequence number the next frame will carry. */
  get nextSequence(): number {
    return this.sequence;
  }

  /**
   * Returns the complete wire frame, length prefix included, in one buffer (one socket write).
   * Throws only when the sequence space is exhausted; the connection must then be closed.
   */
  seal(payload: Uint8Array): Buffer {
    const parts = this.sealParts(payload);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * The complete wire frame as parts to write one after another: one buffer for a payload of
   * up to CIPHER_SLICE_BYTES; for a larger one, the length prefix and sequence, the ciphertext
   * slice by slice, then the tag (see CIPHER_SLICE_BYTES). Throws as `seal` does.
   */
  sealParts(payload: Uint8Array): Buffer[] {
    if (this.sequence > MAX_SEQUENCE) throw new Error('frame sequence exhausted; the connection must be re-established');
    const sequence = this.sequence++;
    const hi = Math.floor(sequence / TWO_POW_32);
    const lo = sequence >>> 0;
    this.setSequence(hi, lo);
    // createCipheriv and setAAD copy the nonce and AAD synchronously, so reusing them is safe.
    const cipher = createCipheriv(CIPHER, this.key, this.nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(this.aad);
    const bodyLength = FRAME_OVERHEAD_BYTES + payload.length;
    const start = LENGTH_PREFIX_BYTES + SEQUENCE_BYTES;
    const large = payload.length > CIPHER_SLICE_BYTES;
    const head = Buffer.allocUnsafe(large ? start : LENGTH_PREFIX_BYTES + bodyLength);
    head.writeUInt32BE(bodyLength, 0);
    head.writeUInt32BE(hi, LENGTH_PREFIX_BYTES);
    head.writeUInt32BE(lo, LENGTH_PREFIX_BYTES + 4);
    if (!large) {
      // GCM is a stream mode: update returns exactly as many bytes as it is given, final none.
      const written = cipher.update(payload).copy(head, start);
      cipher.final();
      cipher.getAuthTag().copy(head, start + written);
      return [head];
    }
    const parts = [head];
    for (let at = 0; at < payload.length; at += CIPHER_SLICE_BYTES) parts.push(cipher.update(payload.subarray(at, at + CIPHER_SLICE_BYTES)));
    cipher.final();
    parts.push(cipher.getAuthTag());
    return parts;
  }
}

/**
 * Why `open` dropped a frame:
 * - `rejected`: it does not authenticate under this key (forged, tampered, truncated, or from
 *   another cluster or connection);
 * - `replayed`: it authenticates but its sequence is lower than expected (already delivered);
 * - `gap`: it authenticates but its sequence is higher than expected: an earlier frame was
 *   removed or held back, so this stream can no longer deliver in order.
 */
export type OpenFailure = 'rejected' | 'replayed' | 'gap';

/** Opens incoming frames for one direction of one connection. */
export class FrameOpener extends DirectionState {
  private expected = 0;

  /** The sequence number the next accepted frame must carry. */
  get expectedSequence(): number {
    return this.expected;
  }

  /**
   * The payload of a frame body (without its length prefix), or why it was dropped. Never
   * throws. A dropped frame does not move the expected sequence on.
   *
   * The body may come as the parts it arrived in (frame-codec.ts `nextParts`); a payload
   * larger than CIPHER_SLICE_BYTES is decrypted a slice at a time into one buffer of its size.
   *
   * The frame is authenticated before its sequence is judged, so a forged frame always counts
   * as `rejected` and only genuine frames count as replayed or out of order.
   */
  open(body: Buffer | readonly Buffer[]): Buffer | OpenFailure {
    const parts = Buffer.isBuffer(body) ? [body] : body;
    let length = 0;
    for (const part of parts) length += part.length;
    if (length < FRAME_OVERHEAD_BYTES) return 'rejected';
    // The sequence and the tag are small; gathered when they straddle parts.
    const first = parts[0]!;
    const sequenceBytes = first.length >= SEQUENCE_BYTES ? first : bytesAt(parts, 0, SEQUENCE_BYTES);
    const hi = sequenceBytes.readUInt32BE(0);
    const lo = sequenceBytes.readUInt32BE(4);
    this.setSequence(hi, lo);
    const payloadLength = length - FRAME_OVERHEAD_BYTES;
    let payload: Buffer;
    try {
      const decipher = createDecipheriv(CIPHER, this.key, this.nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(this.aad);
      decipher.setAuthTag(bytesAt(parts, length - TAG_BYTES, TAG_BYTES));
      if (parts.length === 1 && payloadLength <= CIPHER_SLICE_BYTES) {
        payload = decipher.update(parts[0]!.subarray(SEQUENCE_BYTES, length - TAG_BYTES));
      } else {
        payload = Buffer.allocUnsafe(payloadLength);
        let written = 0;
        forEachSlice(parts, SEQUENCE_BYTES, SEQUENCE_BYTES + payloadLength, (slice) => {
          written += decipher.update(slice).copy(payload, written);
        });
      }
      decipher.final(); // throws when the tag does not match; `payload` is then discarded
    } catch {
      return 'rejected';
    }
    const sequence = hi * TWO_POW_32 + lo;
    if (sequence !== this.expected) return sequence < this.expected ? 'replayed' : 'gap';
    this.expected++;
    return payload;
  }
}

/** `count` bytes of the concatenation of `parts` from `offset` on: a view when they lie in one part, else a copy. */
function bytesAt(parts: readonly Buffer[], offset: number, count: number): Buffer {
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (offset < at + part.length) {
      const start = offset - at;
      if (start + count <= part.length) return part.subarray(start, start + count);
      const out = Buffer.allocUnsafe(count);
      forEachSlice(parts, offset, offset + count, (slice, into) => slice.copy(out, into));
      return out;
    }
    at += part.length;
  }
  return Buffer.alloc(0);
}

/**
 * Calls `f` with views of bytes `from` to `to` of the concatenation of `parts`, in order and
 * at most CIPHER_SLICE_BYTES each, with each view's offset from `from`.
 */
function forEachSlice(parts: readonly Buffer[], from: number, to: number, f: (slice: Buffer, into: number) => void): void {
  let at = 0;
  for (const part of parts) {
    const start = Math.max(from - at, 0);
    const end = Math.min(to - at, part.length);
    for (let s = start; s < end; s += CIPHER_SLICE_BYTES) f(part.subarray(s, Math.min(s + CIPHER_SLICE_BYTES, end)), at + s - from);
    at += part.length;
    if (at >= to) return;
  }
}
