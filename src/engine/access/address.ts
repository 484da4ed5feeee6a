/**
 * Client addresses: parsing (IPv4, IPv6, IPv4-mapped IPv6) and the `ip:` entries of a deny
 * list as a node:net BlockList, so CIDR ranges of either family are matched by the runtime,
 * not by string comparison.
 */
import { BlockList, isIP } from 'node:net';

export interface ClientAddress {
  address: string;
  family: 'ipv4' | 'ipv6';
}

/** The address as given, or undefined when it is not an IP address. IPv4-mapped IPv6 counts as IPv4. */
export function parseAddress(text: string): ClientAddress | undefined {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(t);
  if (mapped?.[1] !== undefined) t = mapped[1];
  const v = isIP(t);
  if (v === 4) return { address: t, family: 'ipv4' };
  if (v === 6) return { address: t.toLowerCase(), family: 'ipv6' };
  return undefined;
}

/** Builds a BlockList of `ip:` deny entries; throws on an entry that is neither an address nor a CIDR range. */
export function addressBlockList(entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const addr = parseAddress(slash < 0 ? entry : entry.slice(0, slash));
    if (!addr) throw new Error(`deny list entry ip:${entry} is not an IP address or CIDR range`);
    if (slash < 0) {
      list.addAddress(addr.address, addr.family);
      continue;
    }
    const prefix = Number(entry.slice(slash + 1));
    const max = addr.family === 'ipv4' ? 32 : 128;
    if (!/^\d{1,3}$/.test(entry.slice(slash + 1)) || prefix > max) throw new Error(`deny list entry ip:${entry} has a bad prefix length`);
    list.addSubnet(addr.address, prefix, addr.family);
  }
  return list;
}

export function isBlocked(list: BlockList | undefined, addr: ClientAddress | undefined): boolean {
  return list !== undefined && addr !== undefined && list.check(addr.address, addr.family);
}
