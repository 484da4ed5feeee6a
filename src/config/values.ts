/**
 * Pure parsers for configuration values. Each returns the typed value or throws
 * `InvalidValue` with the reason; the loader adds file, key and the value to the message.
 */
import { isIP } from 'node:net';

export class InvalidValue extends Error {}

export interface Address {
  host: string;
  port: number;
}

export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** `host:port` or `[ipv6]:port`; host names are allowed (resolved later, not here). */
export function parseAddress(raw: string): Address {
  const v = raw.trim();
  let host: string;
  let portText: string;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(v);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
  } else {
    const i = v.lastIndexOf(':');
    if (i <= 0) throw new InvalidValue('expected host:port');
    host = v.slice(0, i);
    portText = v.slice(i + 1);
    if (!IPV4.test(host) && !HOSTNAME.test(host)) throw new InvalidValue(`"${host}" is not an IPv4 address or host name`);
  }
  if (!/^\d{1,5}$/.test(portText)) throw new InvalidValue('port must be a number');
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new InvalidValue('port must be 1 to 65535');
  return { host, port };
}

export function parseAddressList(raw: string): Address[] {
  return splitList(raw).map((item) => {
    try {
      return parseAddress(item);
    } catch (err) {
      throw new InvalidValue(`"${item}": ${(err as Error).message}`);
    }
  });
}

/**
 * Comma-separated IP addresses or CIDR ranges, IPv4 or IPv6 (`127.0.0.1/32, ::1, 10.0.0.0/8`);
 * empty for none. Returned as written (trimmed); the engine builds its matcher from them.
 */
export function parseCidrList(raw: string): string[] {
  return splitList(raw).map((item) => {
    const slash = item.indexOf('/');
    let host = slash < 0 ? item : item.slice(0, slash);
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    const family = isIP(host);
    if (family === 0) throw new InvalidValue(`"${item}" is not an IP address or CIDR range`);
    if (slash >= 0) {
      const bits = item.slice(slash + 1);
      const max = family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) throw new InvalidValue(`"${item}": prefix length must be 0 to ${max}`);
    }
    return item;
  });
}

export function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function parseInteger(raw: string, min: number, max: number): number {
  const v = raw.trim();
  if (!/^-?\d+$/.test(v)) throw new InvalidValue('not a whole number');
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidValue(`out of range ${min} to ${max}`);
  return n;
}

export function parseBoolean(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw new InvalidValue('not a boolean');
}

export function parseEnum<T extends string>(raw: string, allowed: readonly T[]): T {
  const v = raw.trim();
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new InvalidValue('not one of the allowed values');
}

/** Cluster and group ids: letters, digits, `_ - . /`, 1 to 64 characters. */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9_./-]{1,64}$/;

/** Node ids: letters, digits, `_ - .`, 1 to 64 characters, starting with a letter or digit. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function parsePattern(raw: string, pattern: RegExp): string {
  const v = raw.trim();
  if (!pattern.test(v)) throw new InvalidValue('contains characters that are not allowed or has the wrong length');
  return v;
}
