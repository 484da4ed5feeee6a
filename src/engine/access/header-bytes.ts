/**
 * Identity headers on the wire. A subject or claim may hold any character (a sign-in's
 * subject, a JWT claim), but an HTTP header carries bytes, and Node refuses a header value
 * with a character beyond U+00FF (a forward-auth answer would fail with 500). Values are sent
 * as their UTF-8 bytes, which is what proxies pass along and upstreams read as text; a value
 * of plain ASCII is unchanged. The JSON door's `upstreamHeaders` keep the value as text.
 */

/** `value` as the string of its UTF-8 bytes, one character per byte (what Node writes as latin1). */
export function asHeaderBytes(value: string): string {
  // A loop, not a regular expression: it runs for every identity header of every allow.
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return Buffer.from(value, 'utf8').toString('latin1');
  return value;
}
