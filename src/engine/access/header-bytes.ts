/**
 * Identity headers on the wire. A subject or claim may hold any character (a sign-in's
 * subject, a JWT claim), but an HTTP header carries bytes, and Node refuses a header value
 * with a character beyond U+00FF (a forward-auth answer would fail with 500). Values are sent
 * as their UTF-8 bytes, which is what proxies pass along and upstreams read as text; a value
 * of plain ASCII is unchanged. The JSON door's `upstreamHeaders` keep the value as text.
 */
// eslint-disable-next-line no-control-regex
const NOT_ASCII = /[^\x00-\x7f]/;

/** `value` as the string of its UTF-8 bytes, one character per byte (what Node writes as latin1). */
export function asHeaderBytes(value: string): string {
  return NOT_ASCII.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}
