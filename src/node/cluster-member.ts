/**
 * A node's place in the cluster: the encrypted transport, the membership protocol on top of
 * it, joining through the configured peers, and what the management API shows and does.
 *
 * Joining:
 * - No peers (other than this node itself): this is the first node; it waits for others.
 * - A peer refuses (cluster id, secret, mode, version, duplicate id): fatal. `start` throws,
 *   or, for a refusal met while retrying in the background, `onFatal` is called; the node
 *   exits non-zero. Another peer would say the same.
 * - No peer answers: the node keeps running on its own and keeps trying (quickly at first,
 *   then every `reconnect_interval`), so that nodes may start in any order. Members
 *   remembered from the last run (data_dir/members.json) are tried too, so a node whose
 *   configured peer is down can still find the rest of its cluster.
 * - A configured peer that is not a member keeps being tried even once the node has company,
 *   so two halves that started apart merge; a refusal then is logged, not fatal.
 * - A peer address that turns out to be this node itself (another name for it) is skipped.
 * - A configured peer given by host name stands for every address the name resolves to
 *   (peer-discovery.ts): each is tried, and the name is resolved again every round, so members
 *   that appear behind it later are found.
 * - A configured peer whose host name does not resolve is listed as `not-resolved`, and
 *   resolved again every round until it does.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { seededRandom } from '../core/random.js';
import { COHORT_VERSION } from '../core/version.js';
import type { NodeConfig } from '../config/node-config.js';
import { isWildcardHost } from '../config/schema.js';
import { formatAddress, type Address } from '../config/values.js';
import { clusterInfo, type ClusterInfo } from './cluster-info.js';
import { isActive, type Member } from '../cluster/member-list.js';
import { Membership } from '../cluster/membership.js';
import { resolveTiming, timingProblems, type MembershipTiming } from '../cluster/timing.js';
import { TransportMux } from '../transport/mux.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import { randomInt } from 'node:crypto';
import { writeFileAtomic } from './data-dir.js';
import { Rpc } from '../rpc/rpc.js';
import type { NodeMeta } from './node-meta.js';
import { nodeMembershipDelegate } from './membership-delegate.js';
import type { PeerIdentity } from '../transport/transport.js';
import { resolvePeers, systemLookup, type PeerLookup } from './peer-discovery.js';
import { CLUSTER_SCOPE, indexFromNodeId, scopeKeys, scopeSettings, type EngineScopeInfo } from '../state/grid/scopes.js';
import { engineDirectoryView, type EngineDirectoryView, type GridDirectory } from '../state/grid/grid-directory.js';

import type { NodeMetrics } from './metrics.js';

/**
 * Where other hosts reach this engine's runtime API: `[http] runtime`, with the cluster's
 * advertised host in place of a wildcard (0.0.0.0 or ::) one.
 */
function runtimeAddress(config: NodeConfig): string {
  const { host, port } = config.http.runtime;
  return formatAddress({ host: isWildcardHost(host) ? config.cluster.advertise.host : host, port });
}

/** How long a leaving node keeps answering its peers' requests after it told them it leaves (ms). */
const LEAVE_HANDOFF_MS = 250;

export const MEMBERS_FILE = 'members.json';

/** An engine's scope metadata (state/grid/scopes.ts): its node index and the scopes it keeps state in. */
function scopeMeta(config: NodeConfig): Pick<NodeMeta, 'index' | 'scopes' | 'sessionScope'> {
  const keys = scopeKeys(scopeSettings(config));
  const index = config.state.nodeIndex ?? indexFromNodeId(config.node.id);
  const scopes = [...new Set(Object.values(keys))].filter((k) => k !== CLUSTER_SCOPE).sort();
  return {
    ...(index === null ? {} : { index }),
    ...(scopes.length > 0 ? { scopes } : {}),
    ...(keys.session === CLUSTER_SCOPE ? {} : { sessionScope: keys.session }),
  };
}
const JOIN_RETRY_MIN_MS = 100;
/** How long a node runs alone before it warns that no peer answers (ms). */
const WARN_ALONE_AFTER_MS = 5000;
/** How often the member list is saved while it changes (ms). */
const SAVE_MEMBERS_EVERY_MS = 2000;

export interface ClusterMemberOptions {
  config: NodeConfig;
  log: Logger;
  clock: Clock;
  /** Someone ran `cohort cluster stop`: the node should stop gracefully. */
  onStopCluster(by: string): void;
  /** A peer refused this node while it was retrying to join in the background. */
  onFatal(err: CohortError): void;
  /** The node's metrics (node/metrics.ts): RPC latency and probe round trips are observed as they happen. */
  metrics?: Pick<NodeMetrics, 'rpcObserver' | 'probeRoundTrip'>;
  /** Resolves the host names among the configured peers (default: the system's resolver). */
  lookup?: PeerLookup;
}

/** The membership timings of a configuration; throws CONFIG_INVALID_VALUE when they clash. */
export function membershipTiming(config: NodeConfig): MembershipTiming {
  const timing = resolveTiming(config.cluster.profile, config.cluster.timing);
  const problems = timingProblems(timing);
  if (problems.length > 0) {
    throw new CohortError('CONFIG_INVALID_VALUE', `${config.file}: [cluster] timings with profile ${config.cluster.profile}: ${problems.join('; ')}`, {
      file: config.file,
      section: 'cluster',
    });
  }
  return timing;
}

export class ClusterMember implements GridDirectory {
  readonly transport: TcpTransport;
  readonly mux: TransportMux;
  readonly membership: Membership;
  /** Request/response with the other nodes (state services, configuration replication). */
  readonly rpc: Rpc;
  private readonly options: ClusterMemberOptions;
  private readonly timing: MembershipTiming;
  private readonly notResolved = new Set<string>();
  private retryTimer: TimerHandle | undefined;
  private saveTimer: TimerHandle | undefined;
  private warnedAlone = false;
  private readonly warned = new Set<string>();
  private joinAttempts = 0;
  /** Since when this node has had no other active member (undefined: it has company). */
  private aloneSince: number | undefined;
  private started = false;
  private stopped = false;
  private readonly changeListeners: Array<() => void> = [];
  /** Member addresses saved by the last run (read once, at start). */
  private remembered: string[] = [];
  private readonly lookup: PeerLookup;
  /** Who answered at each configured address (a name's addresses) when it was last dialled. */
  private readonly identities = new Map<string, PeerIdentity>();
  /** The grid's view of the member list (engines, their scopes, the witnesses). */
  private readonly engines: EngineDirectoryView;

  constructor(options: ClusterMemberOptions) {
    this.options = options;
    this.lookup = options.lookup ?? systemLookup;
    const { config, log, clock } = options;
    this.timing = membershipTiming(config);
    const address = formatAddress(config.cluster.advertise);
    this.transport = new TcpTransport({
      clusterId: config.cluster.id,
      nodeId: config.node.id,
      bind: config.cluster.bind,
      advertisedAddress: address,
      secret: config.cluster.secretKey,
      previousSecrets: config.cluster.previousSecretKeys,
      clock,
      logger: log,
    });
    this.mux = new TransportMux(this.transport);
    this.rpc = new Rpc({ mux: this.mux, clock, logger: log, timeoutMs: config.state.rpcTimeoutMs, ...(options.metrics ? { observer: options.metrics.rpcObserver } : {}) });
    this.membership = new Membership({
      id: config.node.id,
      address,
      delegate: nodeMembershipDelegate({ role: config.node.role, version: COHORT_VERSION, mode: config.node.mode, group: config.state.groupId, ...(config.node.role === 'engine' ? { ...scopeMeta(config), runtime: runtimeAddress(config) } : {}) }),
      timing: this.timing,
      clock,
      // Only probe order and jitter depend on it; nothing secret.
      random: seededRandom(randomInt(2 ** 32)),
      mux: this.mux,
      logger: log,
      ...(options.metrics ? { onProbeRoundTrip: options.metrics.probeRoundTrip } : {}),
      listener: {
        onStopCluster: (by) => options.onStopCluster(by),
        onMemberChange: () => this.membersChanged(),
        onMemberForgotten: () => this.membersChanged(),
      },
    });
    this.engines = engineDirectoryView(() => this.membership.list());
  }

  /** Binds the cluster port and joins; throws on a bind failure or a refusal. */
  async start(): Promise<void> {
    await this.transport.start(this.mux.handlers());
    this.started = true;
    this.aloneSince = this.options.clock.now();
    this.membership.start();
    this.remembered = readRememberedMembers(this.options.config.node.dataDir, this.options.log);
    const candidates = this.joinCandidates();
    if (candidates.configured.length === 0 && candidates.remembered.length === 0) {
      this.options.log.info({ cluster: this.membership.address }, 'first node of the cluster: no peers configured; waiting for others to join');
      return;
    }
    await this.tryJoin();
  }

  private membersChanged(): void {
    this.scheduleSave();
    for (const listener of this.changeListeners) listener();
  }

  /** Calls `listener` whenever a member is added, changes state or is deleted. */
  onMembersChanged(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /** The clock the node runs by (the grid engine waits by it). */
  get clock(): Clock {
    return this.options.clock;
  }

  /** Active members with role `engine` (this node included when it is one): id → cluster address. */
  activeEngines(): Map<string, string> {
    return this.engines.activeEngines();
  }

  /** Active engines that hold their share of the grid's state (membership metadata `holdsState`). */
  servingEngines(): ReadonlySet<string> {
    return this.engines.servingEngines();
  }

  /** Active engines under suspicion: not counted by the grid's write majority. */
  suspectEngines(): ReadonlySet<string> {
    return this.engines.suspectEngines();
  }

  /** Tells the cluster this engine now holds its share of the grid's state. */
  announceHoldsState(): void {
    this.membership.updateMeta({ holdsState: true });
  }

  /** Tells the cluster whether this engine refuses writes (`cohort cluster info` shows it on any node). */
  announceWriteRefusal(refusing: boolean): void {
    this.membership.updateMeta({ refusesWrites: refusing });
  }

  /** Engines in the member list that did not leave (active or failed): the base of write majorities. */
  knownEngineCount(): number {
    return this.engines.knownEngineCount();
  }

  /** Their ids. */
  knownEngineIds(): ReadonlySet<string> {
    return this.engines.knownEngineIds();
  }

  /** The most engines an active engine announces it counts in the cluster (`engineCount`). */
  announcedEngineCount(): number {
    return this.engines.announcedEngineCount();
  }

  /** Announces how many engines this engine counts in the cluster. */
  announceEngineCount(count: number): void {
    this.membership.updateMeta({ engineCount: count });
  }

  /**
   * Consoles and replicas in the member list that did not leave, and those of them active: the
   * witnesses of the grid's write majority (state/grid/write-majority.ts).
   */
  witnesses(): { known: number; active: number } {
    return this.engines.witnesses();
  }

  /** What the grid's scopes need to know of the engines (group, node index). */
  engineScopeInfo(): Map<string, EngineScopeInfo> {
    return this.engines.engineScopeInfo();
  }

  /** Every scope key the engines use (cluster-wide included). */
  scopeKeysInUse(): Set<string> {
    return this.engines.scopeKeysInUse();
  }

  /** The session scope of subcluster `group`, as its engines tell it; undefined when none is known. */
  sessionScopeOfGroup(group: string): string | undefined {
    return this.engines.sessionScopeOfGroup(group);
  }

  /** Active members that are not this node, with their role and metadata. */
  otherActiveMembers(): Member[] {
    return this.membership.list().filter((m) => m.id !== this.membership.id && isActive(m));
  }

  /**
   * The console engines and the replica follow: the active member with role console and the
   * highest configuration epoch (after a promotion, a returning old console has a lower one).
   */
  activeConsole(): Member | undefined {
    return this.consoleCandidates()[0];
  }

  /**
   * Every active member claiming the console role, highest epoch first. A claim proves nothing:
   * followers take configuration only from one that proves the console authority
   * (policy/console-authority.ts), trying them in this order.
   */
  consoleCandidates(): Member[] {
    const consoles = this.otherActiveMembers().filter((m) => m.meta.role === 'console');
    return consoles.sort((a, b) => (b.meta.epoch ?? 0) - (a.meta.epoch ?? 0) || (a.id < b.id ? -1 : 1));
  }

  /** Announces a change of this node's own metadata (role after a promotion, epoch). */
  updateMeta(changes: Partial<NodeMeta>): void {
    this.membership.updateMeta(changes);
  }

  /** The cluster as this node sees it (`cohort cluster info`). */
  info(): ClusterInfo {
    return clusterInfo(this.options.config.cluster.id, this.membership.id, this.membership.list(), [...this.notResolved]);
  }

  /** `cohort cluster delete-node`: refuses an active member (CLUSTER_NODE_ACTIVE). */
  deleteNode(address: string): Member {
    const m = this.membership.forget(address);
    this.scheduleSave();
    return m;
  }

  /** `cohort cluster stop`: every member, this one included, is asked to stop. */
  stopCluster(): void {
    this.membership.stopCluster();
  }

  /**
   * Leaves gracefully (peers list this node as `left`), saves the member list, and closes
   * the transport once the leave has been written.
   */
  async leave(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.options.clock.clearTimeout(this.retryTimer);
    this.options.clock.clearTimeout(this.saveTimer);
    this.membership.leave();
    // The leave reached every peer at once; for a moment, keep answering the requests they
    // sent before it (grid writes to replicate, reads), while they place the partitions
    // elsewhere, so a graceful stop fails none of them.
    if (this.started && this.membership.list().some((m) => m.id !== this.membership.id && isActive(m))) {
      await new Promise<void>((resolve) => this.options.clock.setTimeout(resolve, LEAVE_HANDOFF_MS));
    }
    this.rpc.close();
    // A node that never bound its port, or never met anyone, has nothing new to remember:
    // keep the list of the last run rather than overwrite it with nothing.
    if (this.started) this.saveMembers();
    await this.transport.close();
  }

  private joinCandidates(): { configured: Address[]; remembered: string[] } {
    const self = this.membership.address;
    const configured = this.options.config.cluster.peers.filter((p) => formatAddress(p) !== self);
    const configuredText = new Set(configured.map(formatAddress));
    const remembered = this.remembered.filter((a) => a !== self && !configuredText.has(a));
    return { configured, remembered };
  }

  /**
   * One round of joining: through the configured peers (names resolved to every address they
   * list), then the remembered ones. While this node is alone a configured peer's refusal is
   * fatal (it speaks for the cluster this node was told to join); once it has company, a
   * configured peer that is still missing is retried without end, and a refusal there is only
   * logged, so that two halves that started apart still merge. With a host name among the
   * peers, rounds go on for good: its answer may list new members at any time.
   */
  private async tryJoin(): Promise<void> {
    const { configured, remembered } = this.joinCandidates();
    const alone = this.activePeerAddresses().size === 0;
    const resolved = await resolvePeers(configured, this.lookup);
    if (this.stopped) return;
    this.noteResolution(configured, resolved.notResolved);
    for (const address of this.identities.keys()) if (!resolved.addresses.includes(address)) this.identities.delete(address);
    let via: string | undefined;
    for (const address of resolved.addresses) {
      if (this.stopped) return;
      if (this.isKnown(address)) continue;
      try {
        via = (await this.joinThroughAddress(address)) ?? via;
      } catch (err) {
        if (alone && via === undefined) throw err;
        this.warnOnce(`refused ${address}`, { peer: address, err }, `configured peer ${address} refused this node; its cluster stays apart`);
      }
    }
    // Remembered addresses may since have been taken by something else: a refusal only skips them.
    for (const address of alone && via === undefined ? remembered : []) {
      if (via !== undefined || this.stopped) break;
      via = await this.joinThrough([address]).catch((err: unknown) => {
        this.warnOnce(`refused ${address}`, { peer: address, err }, `remembered member ${address} refused this node; skipping it`);
        return undefined;
      });
    }
    if (this.stopped) return;
    const company = via !== undefined || !alone;
    if (company) {
      this.aloneSince = undefined;
      this.joinAttempts = 0;
    } else {
      this.joinAttempts++;
      this.aloneSince ??= this.options.clock.now();
      // Nodes started together miss each other for a moment; only a lasting absence is news.
      if (!this.warnedAlone && this.options.clock.now() - this.aloneSince >= WARN_ALONE_AFTER_MS) {
        this.warnedAlone = true;
        this.options.log.warn({ peers: [...resolved.addresses, ...remembered], retryMs: this.retryDelay() }, 'no peer could be reached to join through; running alone and retrying');
      }
    }
    const missing = resolved.notResolved.length > 0 || resolved.addresses.some((a) => !this.isKnown(a));
    if (missing || resolved.named) this.scheduleRetry();
  }

  /** Lists the configured peers whose name does not resolve (`not-resolved`), warning once each time one stops resolving. */
  private noteResolution(configured: readonly Address[], notResolved: readonly string[]): void {
    for (const peer of configured) {
      const text = formatAddress(peer);
      if (!notResolved.includes(text)) {
        this.notResolved.delete(text);
      } else if (!this.notResolved.has(text)) {
        this.options.log.warn({ peer: text }, `configured peer ${text}: host name ${peer.host} does not resolve`);
        this.notResolved.add(text);
      }
    }
  }

  /**
   * An address there is no need to join through: this node's own, an active member's, or one
   * where the last connection found this node or an active member (known under the name it
   * advertises: a name's addresses are not the members' addresses).
   */
  private isKnown(address: string): boolean {
    if (address === this.membership.address) return true;
    const active = this.otherActiveMembers();
    if (active.some((m) => m.address === address)) return true;
    const found = this.identities.get(address);
    if (!found) return false;
    return (found.nodeId === this.membership.id && found.address === this.membership.address) || active.some((m) => m.id === found.nodeId && m.address === found.address);
  }

  /**
   * Joins through one configured address: connects first, to learn who answers there (this
   * node under another name, or a member already known, need no join), then joins. Resolves
   * with the address of the member that accepted, or undefined; throws a refusal.
   */
  private async joinThroughAddress(address: string): Promise<string | undefined> {
    let identity: PeerIdentity;
    try {
      identity = await this.transport.connect(address, 'control');
    } catch (err) {
      if (err instanceof CohortError && err.code.startsWith('TRANSPORT_REFUSED')) throw err;
      return undefined; // unreachable for now: tried again at the next round
    }
    this.identities.set(address, identity);
    const via = this.isKnown(address) ? undefined : await this.joinThrough([address]);
    // Members talk to each other at the addresses they advertise; a connection opened under
    // another (a name's address) has served its purpose.
    if (identity.address !== address) this.transport.disconnect(address);
    return via;
  }

  /** Cluster addresses of the other members that are alive or suspect. */
  private activePeerAddresses(): Set<string> {
    return new Set(this.membership.list().filter((m) => m.id !== this.membership.id && isActive(m)).map((m) => m.address));
  }

  /** The address of the member that accepted, or undefined when none answered; throws a refusal. */
  private async joinThrough(peers: string[]): Promise<string | undefined> {
    try {
      return await this.membership.join(peers);
    } catch (err) {
      if (err instanceof CohortError && err.code === 'CLUSTER_JOIN_NO_PEER') return undefined;
      throw err;
    }
  }

  /**
   * While alone: doubling from JOIN_RETRY_MIN_MS up to reconnect_interval, quick when nodes
   * start together. With company (a configured peer still missing): reconnect_interval.
   */
  private retryDelay(): number {
    const steady = Math.max(JOIN_RETRY_MIN_MS, this.timing.reconnectIntervalMs);
    return this.aloneSince === undefined ? steady : Math.min(JOIN_RETRY_MIN_MS * 2 ** this.joinAttempts, steady);
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    this.options.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.options.clock.setTimeout(() => {
      if (this.stopped) return;
      this.tryJoin().catch((err: unknown) => {
        if (err instanceof CohortError) this.options.onFatal(err);
        else this.options.log.error({ err }, 'join retry failed');
      });
    }, this.retryDelay());
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.log.warn(fields, message);
  }

  private scheduleSave(): void {
    if (this.stopped || this.saveTimer !== undefined) return;
    this.saveTimer = this.options.clock.setTimeout(() => {
      this.saveTimer = undefined;
      this.saveMembers();
    }, SAVE_MEMBERS_EVERY_MS);
  }

  /** Remembers the other members' addresses for the next start (best effort; never an empty list). */
  private saveMembers(): void {
    const addresses = this.membership.list().filter((m) => m.id !== this.membership.id).map((m) => m.address);
    if (addresses.length === 0) return;
    try {
      writeFileAtomic(join(this.options.config.node.dataDir, MEMBERS_FILE), `${JSON.stringify({ addresses }, null, 2)}\n`);
    } catch (err) {
      this.options.log.warn({ err }, 'could not save the member list');
    }
  }
}

/** Addresses saved by the last run; a missing or damaged file means none (with a warning). */
function readRememberedMembers(dataDir: string, log: Logger): string[] {
  const path = join(dataDir, MEMBERS_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  try {
    const parsed = JSON.parse(text) as { addresses?: unknown };
    if (Array.isArray(parsed.addresses)) return parsed.addresses.filter((a): a is string => typeof a === 'string');
  } catch {
    // fall through
  }
  log.warn({ file: path }, 'ignoring a damaged member list file');
  return [];
}
