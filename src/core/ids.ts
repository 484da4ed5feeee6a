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

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Ids a prefix serves before a fresh one is drawn: 64^4, the counter's four characters. */
const IDS_PER_PREFIX = 64 ** 4;
let idPrefix = '';
let idCounter = IDS_PER_PREFIX;

/**
 * A correlation id (an access decision's): 16 URL-safe characters, unique in this process and,
 * with overwhelming probability, across processes — a random 72-bit prefix (12 characters)
 * drawn anew every 16.7 million ids, then a 4-character counter. Not a secret and not
 * unpredictable (it names a log line and an answer, it grants nothing), so it costs no call
 * into the CSPRNG per id: ids are made for every request at the front doors.
 */
export function correlationId(): string {
  if (idCounter >= IDS_PER_PREFIX) {
    idPrefix = randomToken(9);
    idCounter = 0;
  }
  const n = idCounter++;
  return idPrefix + ID_ALPHABET[(n >>> 18) & 63]! + ID_ALPHABET[(n >>> 12) & 63]! + ID_ALPHABET[(n >>> 6) & 63]! + ID_ALPHABET[n & 63]!;
}
