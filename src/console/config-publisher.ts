/**
 * The console's side of configuration replication, over the cluster's RPC:
 *
 * - `config.fetch` (engines and the replica, every `polling_delay`, and at once when told of
 *   a save): answers the head version and epoch, and the latest document of every section
 *   (each with the content digest the engine checks) when the asker's version or epoch
 *   differs, or when it asks for a full copy (`full`: an engine that refused its saved copy).
 *   Each call is a contact: engine health is the time since the last one, in polling
 *   intervals.
 * - `config.applied` (one-way, engines): the version an engine applied and when.
 * - `config.export` (the replica): documents and audit records after the ones it holds, once
 *   its newest document and audit record are the console's too; otherwise `diverged`: its
 *   history forked from the console's (a console demoted after a promotion), and it re-syncs
 *   from the fork point (console-role.ts), walking both histories back with `config.history`
 *   (pages signed, as the export is).
 * - `config.discarded` (the re-syncing node): its audit records after the fork point, which
 *   it is about to drop; appended here as `config.discarded` records (once each, however often
 *   they are sent), so what happened on it stays in the one audit trail everyone replicates.
 * - On every save the console tells every active engine and replica (`config.changed`,
 *   one-way), so they fetch within milliseconds rather than at their next poll.
 *
 * A node that is not the active console (a replica, a demoted console) refuses `config.fetch`
 * with CONSOLE_NOT_ACTIVE, so followers never take configuration from it.
 *
 * Secrets stored sealed (core/sealed-secrets.ts): engines receive the `apis` section opened,
 * with the digest of what they receive, since they use the client secrets; the replica
 * receives documents as stored (sealed, same digests as the console's) and the key that opens
 * them, sealed for it (role-proofs.ts).
 */
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Member } from '../cluster/member-list.js';
import type { Rpc } from '../rpc/rpc.js';
import type { AuditInput, AuditRecord, ConfigDocument, ConfigVersionSummary, Repository } from '../repository/repository.js';
import { contentHash } from '../repository/canonical-json.js';
import { consistentExportPage } from './export-page.js';
import { openSecrets, type SecretKeyring } from '../core/sealed-secrets.js';
import { SECTION_SECRETS, type ConfigSection } from '../policy/config-sections.js';
import { fetchStatement } from '../engine/config-follower.js';
import { configRpc, type ConfigRpc, type FetchAnswer } from '../policy/config-protocol.js';
import { consoleRpc, type ConsoleRpc, type ExportAnswer, type ExportRequest } from './console-protocol.js';
import { signStatement, type ConsoleAuthority } from '../policy/console-authority.js';
import { sealKeyForReplica, signAnswer, type ReplicaProof, type ReplicaProofChecker } from './role-proofs.js';

export type { DiscardedRequest, ExportAnswer, ExportRequest, HistoryAnswer, HistoryRequest } from './console-protocol.js';

/** The same audit record (every field), on two nodes. */
export function sameAuditRecord(a: AuditRecord, b: AuditRecord): boolean {
  return a.id === b.id && a.at === b.at && a.user === b.user && a.node === b.node && a.action === b.action && a.section === b.section
    && a.versionBefore === b.versionBefore && a.versionAfter === b.versionAfter && a.summary === b.summary;
}

/** The same configuration version (number, epoch and content hash), on two nodes. */
export function sameVersion(a: Pick<ConfigVersionSummary, 'version' | 'epoch' | 'hash'>, b: Pick<ConfigVersionSummary, 'version' | 'epoch' | 'hash'>): boolean {
  return a.version === b.version && a.epoch === b.epoch && a.hash === b.hash;
}

/** How a follower is doing, as the console sees it. */
export interface FollowerStatus {
  health: 'green' | 'yellow' | 'red';
  lastUpdated: number | null;
  configVersion: number | null;
  configAppliedAt: number | null;
  replication: 'in-sync' | 'out-of-date' | 'failed';
}

interface Contact {
  at: number;
  version: number;
  epoch: number;
  appliedAt: number | null;
  error: string | null;
}

/** The sections engines apply (runtime-settings.ts) and may one day decide with (apis). */
const ENGINE_SECTIONS = new Set(['runtime', 'services', 'api-keys', 'apis']);

/** Most documents or audit records one export carries; the replica pulls the rest next time. */
const EXPORT_BATCH = 500;

/** Most `config.discarded` records looked at to skip one sent again. */
const DISCARDED_LOOKBACK = 1000;

/**
 * Health from the time since the last contact, in polling intervals: green within the last
 * interval (with half an interval of slack for timer jitter), yellow within 10, red beyond
 * or never.
 */
export function healthOf(lastContact: number | null, now: number, pollingDelayMs: number): FollowerStatus['health'] {
  if (lastContact === null) return 'red';
  const intervals = (now - lastContact) / pollingDelayMs;
  if (intervals < 1.5) return 'green';
  if (intervals <= 10) return 'yellow';
  return 'red';
}

export interface ConfigPublisherOptions {
  rpc: Rpc;
  repository: Repository;
  clock: Clock;
  log: Logger;
  pollingDelayMs: number;
  /** Active members other than this node. */
  members(): Member[];
  /** False on a replica or a demoted console. */
  isActive(): boolean;
  /** The console authority this node holds (policy/console-authority.ts); undefined on a replica not admitted. */
  authority(): ConsoleAuthority | undefined;
  /** Checks the proofs of replicas' requests. */
  proofs: ReplicaProofChecker;
  /** The keys of the secrets at rest (opened for engines; the current one handed to the replica). */
  secrets: SecretKeyring;
}

export class ConfigPublisher {

  private readonly contacts = new Map<string, Contact>();
  /** Versions whose secrets did not open for the engines (logged once each). */
  private readonly unopened = new Set<string>();
  private readonly config: ConfigRpc;

  constructor(private readonly o: ConfigPublisherOptions) {
    this.config = configRpc(o.rpc, o.log);
    const replicas: ConsoleRpc = consoleRpc(o.rpc, o.log);
    this.config.handle('config.fetch', async (req, from) => {
      this.refuseUnlessActive();
      this.contacts.set(from.nodeId, {
        at: o.clock.now(),
        version: Number(req.version) || 0,
        epoch: Number(req.epoch) || 0,
        appliedAt: typeof req.appliedAt === 'number' ? req.appliedAt : null,
        error: typeof req.error === 'string' ? req.error.slice(0, 500) : null,
      });
      const current = await o.repository.getCurrentConfig();
      const answer: FetchAnswer = { epoch: current.epoch, version: current.version };
      if (req.full === true || req.version !== current.version || req.epoch !== current.epoch) {
        // Engines get the sections they apply; schedules (which may hold credentials of their
        // HTTP targets) stay with the console and the replica.
        answer.sections = Object.fromEntries(Object.entries(current.sections).filter(([name]) => ENGINE_SECTIONS.has(name)).map(([name, doc]) => [name, this.forEngines(doc)]));
      }
      // Signed over the engine's nonce: engines apply only what the console authority signed.
      const authority = o.authority();
      if (authority) answer.proof = signStatement(authority, 'config-fetch', { nonce: typeof req.nonce === 'string' ? req.nonce : null }, fetchStatement(answer));
      return answer;
    });
    this.config.handle('config.applied', ({ version, appliedAt }, from) => {
      const c = this.contacts.get(from.nodeId);
      if (c && typeof version === 'number' && typeof appliedAt === 'number' && version >= c.version) {
        this.contacts.set(from.nodeId, { ...c, version, appliedAt, error: null });
      }
      return true;
    });
    replicas.handle('config.export', async (req, from) => {
      this.refuseUnlessActive();
      this.assertReplica('config.export', req, from.nodeId);
      const current = await o.repository.getCurrentConfig();
      if (await this.diverges(req)) {
        const answer: ExportAnswer = { epoch: current.epoch, version: current.version, documents: [], audit: [], diverged: true };
        return this.signed('config.export', req, answer);
      }
      const sinceVersion = Number(req.sinceVersion) || 0;
      const read = await o.repository.listConfigDocuments(sinceVersion, EXPORT_BATCH);
      const records = await o.repository.listAudit({ sinceId: req.sinceAuditId, limit: EXPORT_BATCH });
      // A save may commit between the reads: the answer holds the save records of the versions it holds (export-page.ts).
      const [newest] = await o.repository.listConfigVersions({ limit: 1 });
      const { documents, audit } = consistentExportPage(read, records, sinceVersion, EXPORT_BATCH, newest?.version ?? 0);
      const last = documents.at(-1)?.version ?? req.sinceVersion;
      this.contacts.set(from.nodeId, { at: o.clock.now(), version: last, epoch: current.epoch, appliedAt: o.clock.now(), error: null });
      const answer: ExportAnswer = { epoch: current.epoch, version: current.version, documents, audit };
      const key = o.secrets.currentKey;
      const authority = o.authority();
      if (key && authority && req.proof) answer.secretsKey = sealKeyForReplica(authority, req.proof.nonce, key);
      return this.signed('config.export', req, answer);
    });
    replicas.handle('config.history', async (req, from) => {
      this.refuseUnlessActive();
      this.assertReplica('config.history', req, from.nodeId);
      const before = typeof req.before === 'number' ? req.before : undefined;
      const limit = typeof req.limit === 'number' ? req.limit : EXPORT_BATCH;
      const items = req.what === 'audit' ? await o.repository.listAudit({ beforeId: before, limit }) : await o.repository.listConfigVersions({ beforeVersion: before, limit });
      return this.signed('config.history', req, { items });
    });
    replicas.handle('config.discarded', async (body, from) => {
      this.refuseUnlessActive();
      this.assertReplica('config.discarded', body, from.nodeId);
      return this.recordDiscarded(from.nodeId, body.records);
    });
  }

  /**
   * `doc` as an engine receives it: its secrets opened (engines use the client secrets), with
   * the digest of that content, which the fetch answer's signature covers. A secret that does
   * not open fails the fetch (logged): engines keep the configuration they have.
   */
  private forEngines(doc: ConfigDocument): ConfigDocument {
    const walk = SECTION_SECRETS[doc.section as ConfigSection];
    if (!walk) return doc;
    let content: unknown;
    try {
      content = openSecrets(walk, doc.content, this.o.secrets);
    } catch (err) {
      // Every engine asks every polling interval: said once per version.
      const key = `${doc.section}@${doc.version}`;
      if (!this.unopened.has(key) && this.unopened.size < 1000) {
        this.unopened.add(key);
        this.o.log.error({ err, section: doc.section, version: doc.version }, 'cannot open a secret of the configuration for the engines; they keep the configuration they have');
      }
      throw err;
    }
    return { ...doc, content, hash: contentHash(content) };
  }

  /**
   * Whether the asker's newest document or audit record differs from the console's of the
   * same version or id (or the console has none): its history forked from this one.
   */
  private async diverges(req: ExportRequest): Promise<boolean> {
    const { repository } = this.o;
    const sinceVersion = Number(req.sinceVersion) || 0;
    if (sinceVersion > 0 && req.sinceDocument) {
      const [mine] = await repository.listConfigVersions({ beforeVersion: sinceVersion + 1, limit: 1 });
      if (!mine || !sameVersion(mine, { version: sinceVersion, ...req.sinceDocument })) return true;
    }
    const sinceAuditId = Number(req.sinceAuditId) || 0;
    if (sinceAuditId > 0 && req.sinceAudit) {
      const [mine] = await repository.listAudit({ beforeId: sinceAuditId + 1, limit: 1 });
      if (!mine || !sameAuditRecord(mine, req.sinceAudit)) return true;
    }
    return false;
  }

  /**
   * Appends the records node `from` drops in a re-sync as `config.discarded`, each with its
   * original time, user and node and what it was; a record already appended (sent again after
   * a lost answer or a restart) is skipped. Returns how many were appended.
   */
  private async recordDiscarded(from: string, records: unknown): Promise<number> {
    if (!Array.isArray(records)) throw new CohortError('HTTP_BAD_REQUEST', 'config.discarded needs records');
    const held = await this.o.repository.listAudit({ action: 'config.discarded', limit: DISCARDED_LOOKBACK });
    const key = (r: Pick<AuditRecord, 'at' | 'node' | 'summary'>): string => JSON.stringify([r.at, r.node, r.summary]);
    const seen = new Set(held.map(key));
    let appended = 0;
    for (const r of records as AuditRecord[]) {
      if (typeof r?.at !== 'number' || typeof r.user !== 'string' || typeof r.node !== 'string' || typeof r.action !== 'string' || typeof r.summary !== 'string') continue;
      const rec: AuditInput = {
        at: r.at,
        user: r.user.slice(0, 200),
        node: r.node.slice(0, 200),
        action: 'config.discarded',
        section: typeof r.section === 'string' ? r.section : null,
        versionBefore: typeof r.versionBefore === 'number' ? r.versionBefore : null,
        versionAfter: typeof r.versionAfter === 'number' ? r.versionAfter : null,
        summary: `${r.action} dropped when ${from} re-synced its history (its record ${Number(r.id)}): ${r.summary}`.slice(0, 2000),
      };
      if (seen.has(key(rec as AuditRecord))) continue;
      seen.add(key(rec as AuditRecord));
      await this.o.repository.appendAudit(rec);
      appended++;
    }
    if (appended > 0) this.o.log.warn({ node: from, appended }, 'recorded the audit records a re-syncing node dropped (config.discarded)');
    return appended;
  }

  /** Tells every active engine and replica that `doc` was saved. */
  announce(doc: ConfigDocument): void {
    for (const m of this.o.members()) {
      if (m.meta.role === 'engine' || m.meta.role === 'replica') this.config.notify(m.address, 'config.changed', { version: doc.version, epoch: doc.epoch });
    }
  }

  /** How follower `nodeId` is doing against head `version`. */
  status(nodeId: string, version: number): FollowerStatus {
    const c = this.contacts.get(nodeId);
    const now = this.o.clock.now();
    return {
      health: healthOf(c?.at ?? null, now, this.o.pollingDelayMs),
      lastUpdated: c?.at ?? null,
      configVersion: c?.version ?? null,
      configAppliedAt: c?.appliedAt ?? null,
      replication: c?.error ? 'failed' : c && c.version === version ? 'in-sync' : 'out-of-date',
    };
  }

  /**
   * The audit trail, users, tokens and documents go to a replica the console admitted only:
   * one whose request carries the console authority's proof (role-proofs.ts), whatever role
   * its membership metadata claims. CONSOLE_ROLE_UNPROVEN otherwise.
   */
  assertReplica(method: string, body: unknown, nodeId: string): void {
    this.o.proofs.check(method, (body as { proof?: unknown } | undefined)?.proof, nodeId);
  }

  /** `answer` with the console's signature over it and the request's nonce. */
  signed<T extends object>(method: string, req: { proof?: ReplicaProof }, answer: T): T & { proof?: unknown } {
    const authority = this.o.authority();
    return authority && req.proof ? { ...answer, proof: signAnswer(authority, method, req.proof.nonce, answer) } : answer;
  }

  private refuseUnlessActive(): void {
    if (!this.o.isActive()) throw new CohortError('CONSOLE_NOT_ACTIVE', 'this node is not the active console');
  }
}
