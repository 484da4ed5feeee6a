/**
 * What a node's metrics read at scrape time: the counters and state its layers keep anyway.
 * Each function registers the metrics of one part of the node (cohort-node.ts calls those of
 * the parts it runs), so an engine shows grid metrics and a console the engines' health.
 */
import type { FastifyInstance } from 'fastify';
import type { ConsoleClusterView } from '../console/admin-api.js';
import { tlsHandshakeFailures } from '../http/server.js';
import type { ClusterMember } from './cluster-member.js';
import type { NodeMetrics, Sample } from './metrics.js';
import type { GridStats } from './state-provider.js';

/** Every state a member can be reported in, so each series exists (at 0) from the first scrape. */
const MEMBER_STATES = ['active', 'suspect', 'inactive', 'left', 'not-resolved'] as const;

/** Membership, transport and RPC: every node. */
export function clusterMetrics(metrics: NodeMetrics, cluster: ClusterMember): void {
  metrics.gauge('cohort_cluster_members', 'Members of the cluster as this node sees them, by state (this node included).', () => {
    const counts = new Map<string, number>(MEMBER_STATES.map((s) => [s, 0]));
    for (const n of cluster.info().nodes) counts.set(n.state, (counts.get(n.state) ?? 0) + 1);
    return [...counts].map(([state, v]): Sample => [{ state }, v]);
  }, ['state']);
  metrics.gauge('cohort_cluster_mixed_versions', '1 while the active members run different maintenance versions (a rolling upgrade not finished).', () => (cluster.info().mixedVersions ? 1 : 0));
  metrics.gauge('cohort_cluster_clock_skew_seconds', 'Largest difference between two active members\' wall clocks this node measured.', () => cluster.info().clockSkewMs / 1000);

  const m = cluster.membership.stats;
  metrics.counter('cohort_membership_probes_total', 'Direct probes this node sent.', () => m.probes);
  metrics.counter('cohort_membership_probes_failed_total', 'Probes that got no answer, directly or through other members.', () => m.probesFailed);
  metrics.counter('cohort_membership_suspicions_total', 'Suspicions this node raised against members that did not answer its probes.', () => m.suspicionsRaised);
  metrics.counter('cohort_membership_refutations_total', 'Suspicions of this node that it refuted (it was alive).', () => m.refutations);
  metrics.counter('cohort_membership_deaths_declared_total', 'Members this node declared inactive (crashed or silent).', () => m.deathsDeclared);
  metrics.counter('cohort_membership_messages_total', 'Membership messages, by direction.', () => [[{ direction: 'sent' }, m.messagesSent], [{ direction: 'received' }, m.messagesReceived]], ['direction']);

  const transport = cluster.transport;
  // Replication and membership travel on the control channel; partition transfers and saved-
  // state downloads on the bulk channel.
  metrics.counter('cohort_transport_bytes_total', 'Encrypted bytes on the cluster port, by direction and channel (control: membership, requests and replication; bulk: partition transfers).', () => {
    const s = transport.stats();
    return [
      [{ direction: 'sent', channel: 'control' }, s.bytesSent - s.bulkBytesSent],
      [{ direction: 'sent', channel: 'bulk' }, s.bulkBytesSent],
      [{ direction: 'received', channel: 'control' }, s.bytesReceived - s.bulkBytesReceived],
      [{ direction: 'received', channel: 'bulk' }, s.bulkBytesReceived],
    ];
  }, ['direction', 'channel']);
  metrics.counter('cohort_transport_frames_dropped_total', 'Frames and messages dropped on the cluster port, by why (rejected: failed authentication; out_of_sequence: replayed or reordered; oversized; send_queue: a full queue or a failed connection).', () => {
    const s = transport.stats();
    return [
      [{ reason: 'rejected' }, s.framesRejected],
      [{ reason: 'out_of_sequence' }, s.framesOutOfSequence],
      [{ reason: 'oversized' }, s.framesOversized],
      [{ reason: 'send_queue' }, s.sendsDropped],
    ];
  }, ['reason']);
  metrics.counter('cohort_transport_handshakes_refused_total', 'Connections this node refused at the handshake (wrong cluster id, secret or protocol).', () => transport.stats().handshakesRefused);

  const r = cluster.rpc.stats;
  metrics.counter('cohort_rpc_calls_total', 'Requests to other nodes, by outcome.', () => [[{ outcome: 'sent' }, r.callsSent], [{ outcome: 'answered' }, r.callsAnswered], [{ outcome: 'failed' }, r.callsFailed]], ['outcome']);
  metrics.counter('cohort_rpc_requests_served_total', 'Requests from other nodes this node served.', () => r.requestsServed);
}

/** The grid's share of an engine. */
export function gridMetrics(metrics: NodeMetrics, stats: () => GridStats): void {
  // One read per scrape would be enough; the partitions are walked once per metric instead,
  // which costs 271 map lookups each: nothing next to a scrape's text.
  metrics.gauge('cohort_grid_records', 'Records this engine holds (tombstones included), by whether this engine is primary or backup of their partition, or holds them only until the new replicas of a partition that moved away confirm they hold them (moved).', () => {
    const s = stats();
    return [[{ placement: 'primary' }, s.records.primary], [{ placement: 'backup' }, s.records.backup], [{ placement: 'moved' }, s.records.moved]];
  }, ['placement']);
  metrics.gauge('cohort_grid_partitions', 'Partitions placed on this engine, by whether this engine is primary or backup of them.', () => {
    const s = stats();
    return [[{ placement: 'primary' }, s.partitions.primary], [{ placement: 'backup' }, s.partitions.backup]];
  }, ['placement']);
  metrics.gauge('cohort_revocations', 'Entries of the revocation list this engine holds (every engine holds all of them).', () => stats().revocations);
  metrics.gauge('cohort_revocation_cap', 'The revocation list\'s cap ([state] revocation_cap): at the cap, the oldest entries are evicted.', () => stats().revocationCap);
  metrics.counter('cohort_revocations_evicted_total', 'Revocations evicted because the list was at its cap.', () => stats().revocationsEvicted);
}

/** An engine's readiness and its copy of the configuration. */
export function engineMetrics(metrics: NodeMetrics, engine: { ready(): boolean; draining(): boolean; configVersion(): number | undefined; configEpoch(): number | undefined }): void {
  metrics.gauge('cohort_engine_ready', '1 while GET /health/ready answers 200 (configuration, partitions and revocation list held, not draining).', () => (engine.ready() ? 1 : 0));
  metrics.gauge('cohort_engine_draining', '1 while the engine is stopping: ready answers 503 and it serves until drain_seconds have passed.', () => (engine.draining() ? 1 : 0));
  metrics.gauge('cohort_config_version', 'Configuration version: on an engine the version it applied (0 before any), on a console or replica the newest it holds.', () => engine.configVersion() ?? 0);
  metrics.gauge('cohort_config_epoch', 'Epoch of the configuration (raised by every promotion of a replica).', () => engine.configEpoch() ?? 0);
}

/** Console and replica: the configuration they hold and the health of every engine as they see it. */
export function consoleMetrics(metrics: NodeMetrics, view: () => Promise<ConsoleClusterView>): void {
  // One view per scrape: every gauge below reads the same answer, and the next scrape a fresh
  // one (a configuration saved between two scrapes shows in the second).
  let cached: { scrape: number; view: Promise<ConsoleClusterView> } | undefined;
  const current = (): Promise<ConsoleClusterView> => {
    if (!cached || cached.scrape !== metrics.scrapes) cached = { scrape: metrics.scrapes, view: view() };
    return cached.view;
  };
  metrics.gauge('cohort_config_version', 'Configuration version: on an engine the version it applied (0 before any), on a console or replica the newest it holds.', async () => (await current()).configVersion);
  metrics.gauge('cohort_config_epoch', 'Epoch of the configuration (raised by every promotion of a replica).', async () => (await current()).epoch);
  metrics.gauge('cohort_console_active', '1 on the active console; 0 on a replica or a demoted console.', async () => ((await current()).role === 'console' ? 1 : 0));
  metrics.gauge('cohort_node_health', 'Health of every engine and replica as the console sees it (1 for its colour, 0 for the others): green reached the console on its last poll, yellow 2 to 10 intervals ago, red never or longer ago.', async () => {
    const out: Sample[] = [];
    for (const n of (await current()).nodes) {
      if (n.health === null) continue;
      for (const health of ['green', 'yellow', 'red']) out.push([{ member: n.id, member_role: n.role, health }, n.health === health ? 1 : 0]);
    }
    return out;
  }, ['member', 'member_role', 'health']);
  metrics.gauge('cohort_node_config_replication', 'Configuration replication of every engine as the console sees it (1 for its status): in-sync, out-of-date or failed.', async () => {
    const out: Sample[] = [];
    for (const n of (await current()).nodes) {
      if (n.replication === null) continue;
      for (const status of ['in-sync', 'out-of-date', 'failed']) out.push([{ member: n.id, status }, n.replication === status ? 1 : 0]);
    }
    return out;
  }, ['member', 'status']);
  metrics.gauge('cohort_node_config_version', 'Configuration version every engine last reported applying, as the console sees it.', async () => {
    const out: Sample[] = [];
    for (const n of (await current()).nodes) if (n.configVersion !== null && n.role === 'engine') out.push([{ member: n.id }, n.configVersion]);
    return out;
  }, ['member']);
  metrics.gauge('cohort_scheduler_nodes', 'Scheduler nodes by state from their check-ins: running, recovering (check-in older than instance_timeout), down.', async () => {
    const counts = new Map<string, number>([['running', 0], ['recovering', 0], ['down', 0]]);
    for (const n of (await current()).nodes) if (n.scheduler !== null) counts.set(n.scheduler, (counts.get(n.scheduler) ?? 0) + 1);
    return [...counts].map(([state, v]): Sample => [{ state }, v]);
  }, ['state']);
}

/** Every node with HTTPS listeners: their failed handshakes (each listener's series at 0 from the start). */
export function tlsMetrics(metrics: NodeMetrics, servers: () => Iterable<[string, FastifyInstance]>): void {
  metrics.counter(
    'cohort_tls_handshake_failures_total',
    'TLS handshakes an HTTPS listener failed, by server (runtime, proxy, admin, manage): plain HTTP to it, a missing or refused client certificate, no common TLS version or cipher, or the client refused this node\'s certificate. Clients that merely hang up are not counted.',
    () => [...servers()].map(([server, app]): Sample => [{ server }, tlsHandshakeFailures(app)]),
    ['server'],
  );
}
