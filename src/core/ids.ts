import { randomFillSync, randomUUID } from 'node:crypto';

/**
 * Random bytes are taken from the CSPRNG 8 KiB at a time and handed out in slices, each byte
 * once: one call into OpenSSL (and its fork check) per few hundred session ids instead of one
 * per id. The bytes are the same CSPRNG output either way.
 */
const POOL_BYTES = 8192;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;

/** A random, URL-safe token of `bytes` bytes of entropy (default 32: 256 bits). */
export function randomToken(bytes = 32): string {
  if (bytes > POOL_BYTES) return randomFillSync(Buffer.alloc(bytes)).toString('base64url');
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const token = pool.toString('base64url', poolOffset, poolOffset + bytes);
  // Spent bytes are overwritten, so the pool never holds a token already handed out.
  pool.fill(0, poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return token;
}

/** A random RFC 4122 version 4 id. */
export function randomId(): string {
  return randomUUID();
}
