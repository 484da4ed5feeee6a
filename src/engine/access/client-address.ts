/**
 * Which address a request comes from, when proxies stand between the client and the engine.
 *
 * Every proxy appends the address it saw (its peer) to `X-Forwarded-For`, so the entries read
 * right to left walk back from the engine towards the client, and only as far as the walk
 * passes proxies one trusts is the list believable: anything left of the first untrusted
 * entry was written by a party that could have written anything. The client is therefore the
 * rightmost entry that is not a trusted proxy (`[http] trusted_proxies`); with no trusted
 * proxies, that is the last entry.
 *
 * - Inline proxy: the peer of the connection is the last hop. Unless the peer is a trusted
 *   proxy, it is the client, whatever `X-Forwarded-For` it sent.
 * - Sideband doors: the peer is the gateway that asks, trusted by its key, and the request it
 *   describes arrived at that gateway: the client is the rightmost untrusted
 *   `X-Forwarded-For` entry (the gateway's own view when there is no trusted balancer in
 *   front of it), else `X-Real-IP`.
 */
import { BlockList } from 'node:net';
import { parseAddress } from './address.js';

/** `[http] trusted_proxies`, ready to test addresses against; undefined when empty. */
export type TrustedProxies = BlockList | undefined;

/**
 * Builds the trusted-proxy list from entries that are addresses or CIDR ranges, IPv4 or IPv6
 * (`127.0.0.1/32`, `::1`, `10.0.0.0/8`). Throws on anything else, naming the entry.
 */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const addr = parseAddress(slash < 0 ? entry : entry.slice(0, slash));
    if (!addr) throw new Error(`${entry} is not an IP address or CIDR range`);
    if (slash < 0) {
      list.addAddress(addr.address, addr.family);
      continue;
    }
    const bits = entry.slice(slash + 1);
    const max = addr.family === 'ipv4' ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) throw new Error(`${entry} has a bad prefix length (0 to ${max})`);
    list.addSubnet(addr.address, Number(bits), addr.family);
  }
  return list;
}

function isTrusted(trusted: TrustedProxies, text: string): boolean {
  if (trusted === undefined) return false;
  const addr = parseAddress(text);
  return addr !== undefined && trusted.check(addr.address, addr.family);
}

/** `X-Forwarded-For` as one list of entries, every header line of it in order. */
export function forwardedForEntries(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  // The common case, one address on one line (a proxy in front of the client), without the
  // arrays and closures of the general one: every forward-auth decision asks.
  if (typeof header === 'string' && !header.includes(',')) {
    const only = header.trim();
    return only === '' ? [] : [only];
  }
  const lines = Array.isArray(header) ? header : [header];
  return lines.flatMap((line) => line.split(',')).map((e) => e.trim()).filter((e) => e !== '');
}

/**
 * The rightmost entry that is not a trusted proxy; when every entry is trusted, the leftmost
 * (the farthest one can see); undefined for no entries. An entry that is not an address stops
 * the walk and is returned as it is, so the decision denies it as malformed rather than
 * believing what lies left of it.
 */
export function rightmostUntrusted(entries: readonly string[], trusted: TrustedProxies): string | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    if (!isTrusted(trusted, entries[i]!)) return entries[i];
  }
  return entries[0];
}

/** A socket's remote address without the IPv4-mapped IPv6 prefix. */
export function plainAddress(remote: string | undefined): string {
  const a = remote ?? '';
  return a.toLowerCase().startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/**
 * The inline proxy's client: the connection's peer, unless the peer is a trusted proxy; then
 * the rightmost untrusted `X-Forwarded-For` entry (the peer itself when it sent none).
 */
export function inlineClientAddress(peer: string, forwardedFor: string | string[] | undefined, trusted: TrustedProxies): string {
  if (!isTrusted(trusted, peer)) return peer;
  return rightmostUntrusted(forwardedForEntries(forwardedFor), trusted) ?? peer;
}

/**
 * The sideband doors' client: the rightmost untrusted `X-Forwarded-For` entry, else
 * `X-Real-IP`; undefined when the gateway sent neither (the decision denies that).
 */
export function doorClientAddress(forwardedFor: string | string[] | undefined, realIp: string | string[] | undefined, trusted: TrustedProxies): string | undefined {
  const fromList = rightmostUntrusted(forwardedForEntries(forwardedFor), trusted);
  if (fromList !== undefined) return fromList;
  return Array.isArray(realIp) ? realIp[0] : realIp;
}
