/**
 * Length-prefixed framing over a TCP byte stream.
 *
 * Wire format: every frame is `[u32 big-endian body length][body]`. TCP delivers a byte
 * stream, so a frame may arrive split across many chunks, or several frames in one chunk; the
 * decoder reassembles them.
 *
 * A length prefix larger than the decoder's limit is fatal for the stream: nothing after it
 * can be trusted to start on a frame boundary, so the decoder stops for good and reports the
 * length; the connection counts it and closes. The oversized body is never allocated, so a
 * peer cannot make a node reserve 4 GiB by sending four bytes.
 */

/** Size of the length prefix. */
export const LENGTH_PREFIX_BYTES = 4;

/** Largest frame body accepted after the handshake (the default of `maxFrameBytes`). */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Largest frame body accepted during the handshake. Handshake messages are a few hundred
 * bytes; an unauthenticated peer gets no more than this from us.
 */
export const HANDSHAKE_MAX_FRAME_BYTES = 4 * 1024;

/** The largest length a u32 prefix can carry. */
const MAX_ENCODABLE_LENGTH = 0xffff_ffff;

/** Returns `[length][body]` in one buffer. */
export function encodeFrame(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, LENGTH_PREFIX_BYTES);
  return frame;
}

/**
 * Streaming decoder: `push` socket chunks, then call `next` until it returns undefined.
 *
 * Pull style (rather than a callback per frame) lets the caller change `maxFrameBytes`
 * between two frames of the same chunk, which is what happens when the handshake completes
 * and the secure frames that follow may be larger.
 *
 * Invariants: `buffered` is the number of unread bytes in `chunks` from `head` on; once
 * `oversizedLength` is set, nothing is buffered and `next` returns undefined forever.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  /** Read offset into `chunks[0]`. */
  private head = 0;
  private buffered = 0;
  private oversized: number | undefined;
  #maxFrameBytes: number;

  constructor(maxFrameBytes: number = MAX_FRAME_BYTES) {
    this.#maxFrameBytes = checkLimit(maxFrameBytes);
  }

  /** Largest frame body accepted; frames already returned are not affected by a change. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = checkLimit(value);
  }

  /** The length prefix that exceeded the limit, once one has; the stream is dead from then on. */
  get oversizedLength(): number | undefined {
    return this.oversized;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Adds a chunk from the socket. The decoder keeps a reference; callers must not reuse it. */
  push(chunk: Uint8Array): void {
    if (this.oversized !== undefined || chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame body, or undefined when more bytes are needed or the stream has
   * failed (check `oversizedLength`). A body that lies within one chunk is returned as a view
   * of it without copying.
   */
  next(): Buffer | undefined {
    const length = this.nextLength();
    return length === undefined ? undefined : this.take(length);
  }

  /**
   * Like `next`, but a body that spans several chunks comes as views of them, in order,
   * without copying: a secure frame of megabytes (a partition transfer) is decrypted slice by
   * slice straight from the socket's chunks (secure-channel.ts `open`), instead of first being
   * copied into a buffer of its size, which the kernel must also hand out as fresh zeroed pages.
   * The views stay valid: the decoder never reuses a chunk.
   */
  nextParts(): Buffer[] | undefined {
    const length = this.nextLength();
    return length === undefined ? undefined : this.takeParts(length);
  }

  /** The length of the next frame once it is all buffered (its prefix consumed); undefined otherwise. */
  private nextLength(): number | undefined {
    if (this.oversized !== undefined || this.buffered < LENGTH_PREFIX_BYTES) return undefined;
    const length = this.peekLength();
    if (length > this.#maxFrameBytes) {
      // Drop everything: the rest of the stream has no trustworthy frame boundary.
      this.oversized = length;
      this.chunks = [];
      this.head = 0;
      this.buffered = 0;
      return undefined;
    }
    if (this.buffered < LENGTH_PREFIX_BYTES + length) return undefined;
    this.skip(LENGTH_PREFIX_BYTES);
    return length;
  }

  /** Reads the u32 prefix without consuming it; it may straddle chunks. */
  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length - this.head >= LENGTH_PREFIX_BYTES) return first.readUInt32BE(this.head);
    let value = 0;
    let needed = LENGTH_PREFIX_BYTES;
    let offset = this.head;
    for (let i = 0; needed > 0; i++, offset = 0) {
      const chunk = this.chunks[i]!;
      for (; offset < chunk.length && needed > 0; offset++, needed--) value = value * 256 + chunk[offset]!;
    }
    return value;
  }

  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      const available = first.length - this.head;
      if (available > n) {
        this.head += n;
        return;
      }
      n -= available;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Consumes `n` bytes, known to be buffered. */
  private take(n: number): Buffer {
    const parts = this.takeParts(n);
    // The body spans chunks: copy it once into a buffer of exactly its size.
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** Consumes `n` bytes, known to be buffered, as views of the chunks holding them (one, at least). */
  private takeParts(n: number): Buffer[] {
    if (n === 0) return [Buffer.alloc(0)];
    const parts: Buffer[] = [];
    let taken = 0;
    while (taken < n) {
      const chunk = this.chunks[0]!;
      const count = Math.min(chunk.length - this.head, n - taken);
      parts.push(chunk.subarray(this.head, this.head + count));
      taken += count;
      this.skip(count);
    }
    return parts;
  }
}

function checkLimit(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_ENCODABLE_LENGTH) {
    throw new RangeError(`maxFrameBytes must be an integer from 1 to ${MAX_ENCODABLE_LENGTH}, got ${value}`);
  }
  return value;
}
