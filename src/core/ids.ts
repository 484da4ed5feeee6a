import { randomBytes, randomUUID } from 'node:crypto';

/** A random, URL-safe token of `bytes` bytes of entropy (default 32: 256 bits). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** A random RFC 4122 version 4 id. */
export function randomId(): string {
  return randomUUID();
}
