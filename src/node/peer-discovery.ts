/**
 * The addresses a node joins through, from its configured peers (`[cluster] peers`).
 *
 * A peer given by host name stands for every address its DNS answer lists: a Kubernetes
 * headless Service, a round-robin name over several hosts. Each address is tried, not only the
 * first one the system resolver returns, so a node finds every member behind one name, and
 * two groups that started apart under one name merge. The name is resolved again on every
 * join round (`ClusterMember` runs one every `reconnect_interval` while names are configured),
 * so a member whose address appears in the answer later is found too.
 *
 * The resolver is injected (`PeerLookup`): tests give names the addresses they want without a
 * DNS server.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { formatAddress, type Address } from '../config/values.js';

/**
 * Every address `host` resolves to (IPv4 or IPv6 text); rejects, or resolves with none, when
 * it does not resolve.
 */
export type PeerLookup = (host: string) => Promise<string[]>;

/**
 * The system's resolver, as every other name the node dials is resolved: getaddrinfo, so
 * /etc/hosts and the search domains of /etc/resolv.conf apply (`cohort-peers` in a Kubernetes
 * namespace), in the order the system prefers.
 */
export const systemLookup: PeerLookup = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

export interface ResolvedPeers {
  /** Cluster addresses to try, in the configured order, each once: `ip:port` for a name's addresses, an IP peer as it is. */
  addresses: string[];
  /** Configured peers (`host:port` as written) whose host name did not resolve. */
  notResolved: string[];
  /** Whether any configured peer is a host name (whose answer may change). */
  named: boolean;
}

/** Resolves the configured peers; names are looked up at once, side by side. */
export async function resolvePeers(peers: readonly Address[], lookupHost: PeerLookup): Promise<ResolvedPeers> {
  const answers = await Promise.all(
    peers.map(async (peer) => {
      if (isIP(peer.host) !== 0) return { peer, addresses: [formatAddress(peer)] };
      let ips: string[];
      try {
        ips = await lookupHost(peer.host);
      } catch {
        ips = [];
      }
      return { peer, addresses: ips.map((host) => formatAddress({ host, port: peer.port })), name: true };
    }),
  );
  const addresses = [...new Set(answers.flatMap((a) => a.addresses))];
  const notResolved = answers.filter((a) => a.addresses.length === 0).map((a) => formatAddress(a.peer));
  return { addresses, notResolved, named: answers.some((a) => a.name === true) };
}
