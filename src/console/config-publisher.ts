/**
 * The console's side of configuration replication, over the cluster's RPC:
 *
 * - `config.fetch` (engines and the replica, every `polling_delay`, and at once when told of
 *   a save): answers the head version and epoch, and the latest document of every section
 *   when the asker's version or epoch differs. Each call is a contact: engine health is the
 *   time since the last one, in polling intervals.
 * - `config.applied` (one-way, engines): the version an engine applied and when.
 * - `config.export` (the replica): documents and audit records after the ones it holds.
 * - On every save the console tells every active engine and replica (`config.changed`,
 *   one-way), so they fetch within milliseconds rather than at their next poll.
 *
 * A node that is not the active console (a replica, a demoted console) refuses `config.fetch`
 * with CONSOLE_NOT_ACTIVE, so followers never take configuration from it.
 */
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Member } from '../cluster/member-list.js';
import type { Rpc } from '../rpc/rpc.js';
import type { AuditRecord, ConfigDocument, Repository } from '../repository/repository.js';
import type { FetchAnswer, FetchRequest } from '../engine/config-follower.js';

export interface ExportRequest {
  sinceVersion: number;
  sinceAuditId: number;
}

export interface ExportAnswer {
  epoch: number;
  version: number;
  documents: ConfigDocument[];
  audit: AuditRecord[];
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
}

export class ConfigPublisher {

  private readonly contacts = new Map<string, Contact>();

  constructor(private readonly o: ConfigPublisherOptions) {
    o.rpc.handle('config.fetch', async (body, from) => {
      this.refuseUnlessActive();
      const req = body as FetchRequest;
      this.contacts.set(from.nodeId, {
        at: o.clock.now(),
        version: Number(req.version) || 0,
        epoch: Number(req.epoch) || 0,
        appliedAt: typeof req.appliedAt === 'number' ? req.appliedAt : null,
        error: typeof req.error === 'string' ? req.error.slice(0, 500) : null,
      });
      const current = await o.repository.getCurrentConfig();
      const answer: FetchAnswer = { epoch: current.epoch, version: current.version };
      if (req.version !== current.version || req.epoch !== current.epoch) {
        // Engines get the sections they apply; schedules (which may hold credentials of their
        // HTTP targets) stay with the console and the replica.
        answer.sections = Object.fromEntries(Object.entries(current.sections).filter(([name]) => ENGINE_SECTIONS.has(name)));
      }
      return answer;
    });
    o.rpc.handle('config.applied', (body, from) => {
      const { version, appliedAt } = body as { version: number; appliedAt: number };
      const c = this.contacts.get(from.nodeId);
      if (c && typeof version === 'number' && typeof appliedAt === 'number' && version >= c.version) {
        this.contacts.set(from.nodeId, { ...c, version, appliedAt, error: null });
      }
      return true;
    });
      o.rpc.handle('config.export', async (body, from) => {
      this.refuseUnlessActive();
      this.assertReplica(from.nodeId);
      const req = body as ExportRequest;
      const current = await o.repository.getCurrentConfig();
      const documents = await o.repository.listConfigDocuments(Number(req.sinceVersion) || 0, EXPORT_BATCH);
      const audit = await o.repository.listAudit({ sinceId: req.sinceAuditId, limit: EXPORT_BATCH });
      const last = documents.at(-1)?.version ?? req.sinceVersion;
      this.contacts.set(from.nodeId, { at: o.clock.now(), version: last, epoch: current.epoch, appliedAt: o.clock.now(), error: null });
      const answer: ExportAnswer = { epoch: current.epoch, version: current.version, documents, audit };
      return answer;
    });
  }

  /** Tells every active engine and replica that `doc` was saved. */
  announce(doc: ConfigDocument): void {
    for (const m of this.o.members()) {
      if (m.meta.role === 'engine' || m.meta.role === 'replica') this.o.rpc.notify(m.address, 'config.changed', { version: doc.version, epoch: doc.epoch });
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

  /** The audit trail and users go to the replica (or a console) only, not to any cluster member. */
  assertReplica(nodeId: string): void {
    const role = this.o.members().find((m) => m.id === nodeId)?.meta.role;
    if (role !== 'replica' && role !== 'console') throw new CohortError('CONSOLE_NOT_ACTIVE', `${nodeId} is not a replica: it gets no audit records or users`);
  }

  private refuseUnlessActive(): void {
    if (!this.o.isActive()) throw new CohortError('CONSOLE_NOT_ACTIVE', 'this node is not the active console');
  }
}
