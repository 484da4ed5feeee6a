/**
 * Hosts on one machine for real multi-host tests: one Linux network namespace per host, each
 * with its own address on a shared network (a bridge in the test's namespace, one veth pair per
 * host), so that nodes talk over real links that the test can cut, and a second, private veth
 * link per host from the test's own namespace (a management network) on which the test calls
 * the node's HTTP APIs, so it can still ask a host it cut off from the others what it sees.
 *
 *   test's namespace ── mgmt link ──┐ (one per host, a /30 of its own)
 *                                   host namespace: lo, eth0 (shared network), mgmt0
 *   bridge ── link (veth) ── eth0 ──┘
 *
 * Everything carries the test process's pid in its name (namespaces `cohort-test-PID-LABEL`,
 * links `chtPID…`), so runs side by side never meet, and a run killed before its cleanup ran is
 * swept by the next one (its pid is gone). Needs root (CI runs as root), `ip` from iproute2,
 * and for delays `tc` with the kernel's netem queueing discipline.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { alive } from './processes.js';
import { serviceOrSkip } from './services.js';

const exec = promisify(execFile);

const NS_PREFIX = 'cohort-test-';
const LINK_PREFIX = 'cht';
/** The test's addresses: 10.213.K.0/24 for the shared network, 10.213.K+1.0/24 for the management links. */
const NET = '10.213';

export interface NetnsHost {
  /** The test's name for the host (`console`, `engine-1`). */
  label: string;
  /** The network namespace. */
  ns: string;
  /** Its address on the shared network, where the cluster's traffic goes. */
  address: string;
  /** Its address on its management link, which the test's namespace reaches however the shared network is cut. */
  mgmtAddress: string;
  /** The test's end of its link to the bridge: down, the host is cut off from every other host. */
  link: string;
  /** Runs a command inside the namespace: prepend to the command (see processes.ts runCohort `prefix`). */
  prefix: string[];
}

export interface NetnsLab {
  hosts: NetnsHost[];
  host(label: string): NetnsHost;
  /** The shared network, `10.213.K.0/24`. */
  subnet: string;
  /** Cuts `host` off the shared network (its link down, both ends: no carrier). */
  cut(host: NetnsHost): Promise<void>;
  /** Brings its link up again. */
  heal(host: NetnsHost): Promise<void>;
  /**
   * Delays every packet between `host` and the shared network by `ms` each way (netem on both
   * ends of its link); false, and nothing changed, when the kernel has no netem.
   */
  delay(host: NetnsHost, ms: number): Promise<boolean>;
  /** Removes the delay. */
  undelay(host: NetnsHost): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  return (await exec('ip', args, { timeout: 10_000 })).stdout;
}

async function quietly(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch {
    // already gone
  }
}

/**
 * Whether this machine lets the test make namespaces, a bridge and veth pairs; skips `t` with
 * a loud notice when not (not root, no iproute2, a container without CAP_NET_ADMIN), or fails
 * it under COHORT_REQUIRE_SERVICES=1.
 */
export async function netnsOrSkip(t: Pick<TestContext, 'skip'>): Promise<boolean> {
  const probe = async (): Promise<void> => {
    const ns = `${NS_PREFIX}${process.pid}-probe`;
    const link = `${LINK_PREFIX}${process.pid}p`;
    try {
      await ip('netns', 'add', ns);
      await ip('link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    } finally {
      await quietly(() => ip('link', 'del', link));
      await quietly(() => ip('netns', 'del', ns));
    }
  };
  return (await serviceOrSkip(t, 'Network namespaces (ip netns, veth; as root)', 'this machine', probe, 'not permitted')) !== undefined;
}

/** Removes what earlier runs of this helper left behind when they were killed before their cleanup. */
async function sweepStale(): Promise<void> {
  const stale = (name: string, prefix: string): boolean => {
    const pid = Number(/^(\d+)/.exec(name.slice(prefix.length))?.[1]);
    return Number.isInteger(pid) && pid !== process.pid && !alive(pid);
  };
  const namespaces = (await ip('netns', 'list')).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(NS_PREFIX) && stale(n, NS_PREFIX));
  for (const ns of namespaces) await removeNamespace(ns);
  const links = [...(await ip('-o', 'link', 'show')).matchAll(/^\d+: ([^:@\s]+)/gm)].map((m) => m[1]!).filter((n) => n.startsWith(LINK_PREFIX) && stale(n, LINK_PREFIX));
  for (const link of links) await quietly(() => ip('link', 'del', link));
}

/** Kills what still runs in `ns` (the namespace lives on while a process is in it), then deletes it. */
async function removeNamespace(ns: string): Promise<void> {
  let pids: number[] = [];
  try {
    pids = (await ip('netns', 'pids', ns)).split('\n').filter(Boolean).map(Number);
  } catch {
    // no such namespace
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await quietly(() => ip('netns', 'del', ns));
}

/** A /24 pair that no route or address of the test's namespace uses yet (another run's management links would). */
async function freeSubnet(): Promise<number> {
  const used = (await ip('-4', 'route', 'show', 'table', 'all')) + (await ip('-4', 'addr', 'show'));
  for (let i = 0; i < 120; i++) {
    const k = 10 + 2 * ((process.pid + i) % 120);
    if (!used.includes(`${NET}.${k}.`) && !used.includes(`${NET}.${k + 1}.`)) return k;
  }
  throw new Error(`no free /24 pair in ${NET}.0.0/16 for the test's networks`);
}

/**
 * Builds one namespace per label on a new bridge. Everything is removed when the test ends,
 * pass or fail: the processes still running in the namespaces are killed, then the links,
 * the bridge and the namespaces are deleted (call after netnsOrSkip).
 */
export async function netnsLab(t: Pick<TestContext, 'after'>, labels: string[]): Promise<NetnsLab> {
  await sweepStale();
  const pid = process.pid;
  const bridge = `${LINK_PREFIX}${pid}br`;
  const k = await freeSubnet();
  const hosts: NetnsHost[] = labels.map((label, i) => ({
    label,
    ns: `${NS_PREFIX}${pid}-${label}`,
    address: `${NET}.${k}.${i + 1}`,
    mgmtAddress: `${NET}.${k + 1}.${4 * i + 2}`,
    link: `${LINK_PREFIX}${pid}b${i}`,
    prefix: ['ip', 'netns', 'exec', `${NS_PREFIX}${pid}-${label}`],
  }));
  const mgmtLink = (i: number): string => `${LINK_PREFIX}${pid}m${i}`;
  // Registered before anything exists, so a setup that fails half-way is cleaned up too; it
  // never throws (a throwing hook would keep the test's other cleanups from running).
  t.after(async () => {
    for (const h of hosts) await removeNamespace(h.ns);
    for (let i = 0; i < hosts.length; i++) {
      await quietly(() => ip('link', 'del', hosts[i]!.link));
      await quietly(() => ip('link', 'del', mgmtLink(i)));
    }
    await quietly(() => ip('link', 'del', bridge));
  });

  await ip('link', 'add', bridge, 'type', 'bridge');
  await ip('link', 'set', bridge, 'up');
  for (const [i, h] of hosts.entries()) {
    await ip('netns', 'add', h.ns);
    await ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    // The shared network: one end in the namespace (eth0), the other on the bridge.
    await ip('link', 'add', h.link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
    await ip('link', 'set', h.link, 'master', bridge, 'up');
    await ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
    await ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
    // The management link: a /30 between the test's namespace and this host alone.
    await ip('link', 'add', mgmtLink(i), 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', h.ns);
    await ip('addr', 'add', `${NET}.${k + 1}.${4 * i + 1}/30`, 'dev', mgmtLink(i));
    await ip('link', 'set', mgmtLink(i), 'up');
    await ip('-n', h.ns, 'addr', 'add', `${h.mgmtAddress}/30`, 'dev', 'mgmt0');
    await ip('-n', h.ns, 'link', 'set', 'mgmt0', 'up');
  }

  const tc = (h: NetnsHost, inside: boolean, ...args: string[]): Promise<unknown> =>
    inside ? exec('ip', ['netns', 'exec', h.ns, 'tc', ...args.map((a) => (a === '@dev' ? 'eth0' : a))]) : exec('tc', args.map((a) => (a === '@dev' ? h.link : a)));
  return {
    hosts,
    host: (label) => {
      const h = hosts.find((x) => x.label === label);
      if (!h) throw new Error(`no host ${label}`);
      return h;
    },
    subnet: `${NET}.${k}.0/24`,
    cut: async (h) => void (await ip('link', 'set', h.link, 'down')),
    heal: async (h) => void (await ip('link', 'set', h.link, 'up')),
    delay: async (h, ms) => {
      try {
        await tc(h, true, 'qdisc', 'add', 'dev', '@dev', 'root', 'netem', 'delay', `${ms}ms`);
      } catch {
        return false; // no tc, or a kernel without sch_netem ("Specified qdisc kind is unknown")
      }
      await tc(h, false, 'qdisc', 'add', 'dev', '@dev', 'root', 'netem', 'delay', `${ms}ms`);
      return true;
    },
    undelay: async (h) => {
      await quietly(() => tc(h, true, 'qdisc', 'del', 'dev', '@dev', 'root'));
      await quietly(() => tc(h, false, 'qdisc', 'del', 'dev', '@dev', 'root'));
    },
  };
}
