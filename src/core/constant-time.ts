import { timingSafeEqual } from 'node:crypto';

/**
 * Compares two secrets' hashes (or MACs) in constant time. Unlike `timingSafeEqual` it never
 * throws: buffers of unequal length (a malformed stored hash, say) are simply not equal, so
 * one damaged entry in a list of keys refuses that key instead of failing every request.
 * The length of a hash is no secret, so answering early for it leaks nothing; two empty
 * buffers are not a match either (nothing was compared).
 */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length || a.length === 0) return false;
  return timingSafeEqual(a, b);
}
