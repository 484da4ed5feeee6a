/**
 * What a console or replica node is doing, and the changes between those states:
 *
 * - `console`: owns the configuration; serves `config.fetch` / `config.export`, pushes every
 *   save to the engines and the replica.
 * - `replica`: pulls configuration, audit records and admin users from the console every
 *   `polling_delay` into its own repository; read-only admin API.
 * - Promotion (`cohort replica promote`, `POST /admin/v1/replica/promote`): refused while
 *   the console answers, unless forced. The replica raises its epoch above every epoch it has
 *   seen, becomes `console` in its membership metadata (with the epoch), and engines follow
 *   it: they take configuration from the console of the highest epoch and ignore lower ones.
 * - Demotion: a console that sees another console with a higher epoch stops being one,
 *   becomes `demoted` (a replica of the new console), and says so in its log and in
 *   `GET /admin/v1/cluster`.
 * - Re-sync from the fork point: a replica whose history forked from its console's (above
 *   all a demoted console, holding versions it saved that the promoted replica never pulled)
 *   finds the newest version and the newest audit record both hold alike (fork-point.ts),
 *   writes the versions it holds after the fork to DATA_DIR (`dropped-config-<time>.json`),
 *   hands its audit records after the fork to the console (kept there as `config.discarded`
 *   records), drops both from its repository, and pulls the console's history from there: the
 *   two histories are then identical.
 *
 * The state survives restarts in DATA_DIR/console-role.json, so a promoted replica starts as
 * a console and a demoted console does not come back as one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError, isCohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Member } from '../cluster/member-list.js';
import type { ClusterInfo } from '../node/cluster-info.js';
import type { Rpc } from '../rpc/rpc.js';
import type { AuditRecord, ConfigDocument, ConfigVersionSummary, Repository } from '../repository/repository.js';
import { writeFileAtomic } from '../core/files.js';
import { isoTime as iso } from '../core/time-text.js';
import type { ConsoleClusterView } from './admin-api.js';
import type { Principal } from './admin-auth.js';
import { ConfigPublisher, healthOf, sameAuditRecord, sameVersion } from './config-publisher.js';
import { consoleRpc, type ConsoleMethods, type ConsoleRpc, type DiscardedRequest, type ExportRequest, type HistoryRequest } from './console-protocol.js';
import { configRpc, type ConfigRpc } from '../policy/config-protocol.js';
import type { AnswerOf, RequestOf } from '../rpc/protocol.js';
import { forkPoint } from './fork-point.js';
import { AUTHORITY_KEY_FILE, loadAuthority, signStatement, verifyStatement, type ConsoleAuthority } from '../policy/console-authority.js';
import { checkAnswer, newNonce, openKeyFromConsole, replicaProof, ReplicaProofChecker, type ReplicaProof } from './role-proofs.js';
import { loadSecretKeyring, SECRETS_KEY_FILE, type SecretKeyring } from '../core/sealed-secrets.js';

export const CONSOLE_ROLE_FILE = 'console-role.json';
/** The versions a re-sync dropped, with their content: `dropped-config-<ms>.json` in the data directory. */
export const DROPPED_CONFIG_PREFIX = 'dropped-config-';

/** Entries per page when histories are walked back, and per batch of records handed over. */
const HISTORY_PAGE = 200;

/** The replica's requests that carry its proof and get a signed answer. */
type ProvenMethod = 'config.export' | 'config.users' | 'config.tokens' | 'config.history';

export type ConsoleState = 'console' | 'replica' | 'demoted';

export interface ConsoleRoleOptions {
  nodeId: string;
  /** The role in the node configuration: `console` or `replica`. */
  configuredRole: 'console' | 'replica';
  dataDir: string;
  repository: Repository;
  rpc: Rpc;
  clock: Clock;
  log: Logger;
  pollingDelayMs: number;
  /** The scheduler state of every node that checks in (scheduler/scheduler.ts). */
  schedulerStates?(): Promise<Map<string, string>>;
  /** The console authority; default: read from (a console: created in) DATA_DIR/console-authority.key. */
  authority?: ConsoleAuthority;
  /**
   * The keys of the secrets at rest; default: read from (a console: created in)
   * DATA_DIR/secrets.key. A replica adopts its console's with the configuration it pulls.
   */
  secrets?: SecretKeyring;
  cluster: {
    info(): ClusterInfo;
    otherActiveMembers(): Member[];
    activeConsole(): Member | undefined;
    /** Members claiming the console role, highest epoch first; default: the active console alone. */
    consoleCandidates?(): Member[];
    updateMeta(changes: { role?: string; epoch?: number }): void;
    onMembersChanged(listener: () => void): void;
  };
}

interface SavedRole {
  state: ConsoleState;
  epoch: number;
  at: number;
  reason: string;
}

export class ConsoleRole {
  readonly publisher: ConfigPublisher;
  private state: ConsoleState;
  private epoch = 0;
  private reason: string | undefined;
  private syncTimer: TimerHandle | undefined;
  private lastPull: number | null = null;
  private pulling = false;
  private promoting = false;
  private stopped = false;
  private readonly authority: ConsoleAuthority | undefined;
  private readonly config: ConfigRpc;
  /** The console protocol: the replica's pulls and the authority challenge. */
  private readonly replicaRpc: ConsoleRpc;
  private readonly secretKeys: SecretKeyring;
  private warnedNotAdmitted = false;
  private checkingNewer = false;
  private readonly warnedUnproven = new Set<string>();

  constructor(private readonly o: ConsoleRoleOptions) {
    const saved = readSavedRole(join(o.dataDir, CONSOLE_ROLE_FILE));
    this.state = saved?.state ?? o.configuredRole;
    this.reason = saved?.reason;
    // A console creates the authority at its first start; a replica is given it (admission).
    this.authority = o.authority ?? loadAuthority(o.dataDir, this.state === 'console');
    this.secretKeys = o.secrets ?? loadSecretKeyring(o.dataDir, this.state === 'console');
    this.publisher = new ConfigPublisher({
      rpc: o.rpc,
      repository: o.repository,
      clock: o.clock,
      log: o.log,
      pollingDelayMs: o.pollingDelayMs,
      members: () => o.cluster.otherActiveMembers(),
      isActive: () => this.state === 'console',
      authority: () => this.authority,
      proofs: new ReplicaProofChecker(() => this.authority, o.nodeId, o.clock),
      secrets: this.secretKeys,
    });
    this.config = configRpc(o.rpc, o.log);
    this.replicaRpc = consoleRpc(o.rpc, o.log);
    this.config.handle('config.changed', () => {
      if (this.state !== 'console') void this.pull();
      return true;
    });
    this.replicaRpc.handle('config.users', async (body, from) => {
      if (this.state !== 'console') throw new CohortError('CONSOLE_NOT_ACTIVE', 'this node is not the active console');
      this.publisher.assertReplica('config.users', body, from.nodeId);
      return this.publisher.signed('config.users', body, { items: await o.repository.listAdminUsers() });
    });
    // Admin tokens (hashes only, revoked ones included), so the replica accepts the console's
    // tokens after a promotion and learns of sign-outs.
    this.replicaRpc.handle('config.tokens', async (body, from) => {
      if (this.state !== 'console') throw new CohortError('CONSOLE_NOT_ACTIVE', 'this node is not the active console');
      this.publisher.assertReplica('config.tokens', body, from.nodeId);
      return this.publisher.signed('config.tokens', body, { items: await o.repository.listAdminTokens(o.clock.now()) });
    });
    // A challenge any console or admitted replica answers: a console that sees another with a
    // higher epoch steps down only when that one proves it holds the authority.
    // The nonce's shape (a string of at most 64 characters) is the protocol table's to check.
    this.replicaRpc.handle('console.prove', ({ nonce }) => {
      if (!this.authority) throw new CohortError('CONSOLE_ROLE_UNPROVEN', 'this node holds no console authority');
      return signStatement(this.authority, 'console-prove', { nonce, node: o.nodeId }, null);
    });
  }

  /** The console authority this node holds (policy/console-authority.ts); undefined on a replica not admitted. */
  get authorityKey(): ConsoleAuthority | undefined {
    return this.authority;
  }

  /** The keys of the secrets at rest (sealing saves, opening them for admins, engines and the scheduler). */
  get secrets(): SecretKeyring {
    return this.secretKeys;
  }

  get current(): ConsoleState {
    return this.state;
  }

  get isActive(): boolean {
    return this.state === 'console';
  }

  /** The membership role this node announces. */
  get announcedRole(): 'console' | 'replica' {
    return this.state === 'console' ? 'console' : 'replica';
  }

  async start(): Promise<void> {
    this.epoch = (await this.o.repository.getCurrentConfig()).epoch;
    this.o.cluster.updateMeta({ role: this.announcedRole, epoch: this.epoch });
    if (this.state === 'demoted') this.o.log.warn({ reason: this.reason }, 'this console was demoted and runs as a replica');
    if (this.authority) this.o.log.info({ consolePublicKey: this.authority.publicKeyText }, 'console authority loaded (engines may set [cluster] console_public_key to this key)');
    else this.warnNotAdmitted();
    this.o.cluster.onMembersChanged(() => this.checkForNewerConsole());
    this.checkForNewerConsole(); // members met while joining
    this.schedulePull(0);
  }

  stop(): void {
    this.stopped = true;
    this.o.clock.clearTimeout(this.syncTimer);
  }

  /** Promotes this replica to console; refused while the console answers, unless `force`. */
  async promote(force: boolean, by: Principal): Promise<{ epoch: number }> {
    if (this.promoting) throw new CohortError('CONSOLE_PROMOTE_REFUSED', 'a promotion of this node is already under way');
    this.promoting = true;
    try {
      return await this.promoteOnce(force, by);
    } finally {
      this.promoting = false;
    }
  }

  private async promoteOnce(force: boolean, by: Principal): Promise<{ epoch: number }> {
    if (this.state === 'console') throw new CohortError('CONSOLE_PROMOTE_REFUSED', 'this node is already the console');
    // Engines would ignore it: they follow only the console authority.
    if (!this.authority) throw new CohortError('CONSOLE_PROMOTE_REFUSED', `this replica is not admitted (no ${AUTHORITY_KEY_FILE} in its data directory): engines would not follow it`);
    const console = this.o.cluster.activeConsole();
    if (console && !force) {
      const answers = await this.config.call(console.address, 'config.fetch', { version: -1, epoch: -1 }, { timeoutMs: 1000 }).then(
        () => true,
        () => false,
      );
      if (answers) throw new CohortError('CONSOLE_PROMOTE_REFUSED', `the console ${console.id} still answers; stop it first, or force the promotion`, { console: console.id });
    }
    if (console) await this.pull().catch(() => undefined); // take the latest it can still give
    const seen = Math.max(this.epoch, console?.meta.epoch ?? 0, (await this.o.repository.getCurrentConfig()).epoch);
    // A replica that never pulled holds no secret and no key: it makes its own, as a console does.
    if (this.secretKeys.currentId === undefined) this.secretKeys.generate();
    this.epoch = await this.o.repository.raiseEpoch(seen + 1, by.user, this.o.nodeId, `replica ${this.o.nodeId} promoted to console${force ? ' (forced)' : ''}`);
    this.become('console', `promoted by ${by.user}${force ? ' (forced)' : ''}`);
    this.o.clock.clearTimeout(this.syncTimer);
    this.o.log.warn({ epoch: this.epoch, by: by.user, force }, 'promoted to console: engines now follow this node');
    return { epoch: this.epoch };
  }

  /** The cluster as `GET /admin/v1/cluster` shows it. */
  async view(clusterId: string): Promise<ConsoleClusterView> {
    const info = this.o.cluster.info();
    const head = await this.o.repository.getCurrentConfig();
    const now = this.o.clock.now();
    const scheduler = (await this.o.schedulerStates?.().catch(() => undefined)) ?? new Map<string, string>();
    return {
      clusterId,
      role: this.state,
      epoch: head.epoch,
      configVersion: head.version,
      mixedVersions: info.mixedVersions,
      versions: info.versions,
      nodes: info.nodes.map((n) => {
        const base = { id: n.id ?? '', address: n.address, role: n.role ?? '', version: n.version ?? '', state: n.state, group: n.group, scheduler: (n.id && scheduler.get(n.id)) ?? null };
        if (n.self && this.state !== 'console') {
          // The replica's own health: its last successful pull.
          return { ...base, health: healthOf(this.lastPull, now, this.o.pollingDelayMs), lastUpdated: iso(this.lastPull), configVersion: head.version, configAppliedAt: iso(this.lastPull), replication: null };
        }
        if (n.self || (n.role !== 'engine' && n.role !== 'replica') || n.id === null) {
          return { ...base, health: null, lastUpdated: null, configVersion: n.self ? head.version : null, configAppliedAt: null, replication: null };
        }
        const s = this.publisher.status(n.id, head.version);
        return { ...base, health: s.health, lastUpdated: iso(s.lastUpdated), configVersion: s.configVersion, configAppliedAt: iso(s.configAppliedAt), replication: s.replication };
      }),
      notes: this.state === 'demoted' ? [`this console was demoted: ${this.reason ?? 'a console with a higher epoch took over'}`] : [],
    };
  }

  private checkForNewerConsole(): void {
    if (this.state !== 'console' || this.stopped || this.checkingNewer) return;
    const other = this.o.cluster.activeConsole();
    if (!other || (other.meta.epoch ?? 0) <= this.epoch) return;
    this.checkingNewer = true;
    void this.proves(other)
      .then((proven) => {
        if (proven) this.demoteFor(other);
        else if (!this.warnedUnproven.has(other.id) && this.warnedUnproven.size < 1000) {
          this.warnedUnproven.add(other.id);
          this.o.log.error({ code: 'CONSOLE_ROLE_UNPROVEN', node: other.id, address: other.address, epoch: other.meta.epoch }, `${other.id} claims the console role with a higher epoch but cannot prove the console authority: ignored`);
        }
      })
      .finally(() => {
        this.checkingNewer = false;
      });
  }

  /** Whether `member` answers the authority challenge with a signature of this node's authority. */
  private async proves(member: Member): Promise<boolean> {
    if (!this.authority) return false;
    const nonce = newNonce();
    try {
      const proof = await this.replicaRpc.call(member.address, 'console.prove', { nonce }, { timeoutMs: this.callTimeoutMs });
      return verifyStatement(this.authority.publicKey, proof, 'console-prove', { nonce, node: member.id }, null);
    } catch {
      return false;
    }
  }

  private demoteFor(other: Member): void {
    if (this.state !== 'console' || this.stopped || (other.meta.epoch ?? 0) <= this.epoch) return;
    this.become('demoted', `console ${other.id} has epoch ${other.meta.epoch ?? 0}, higher than this console's ${this.epoch}`);
    this.o.log.warn({ console: other.id, theirEpoch: other.meta.epoch, ourEpoch: this.epoch }, `demoted to replica: ${this.reason}`);
    this.schedulePull(0);
  }

  private become(state: ConsoleState, reason: string): void {
    this.state = state;
    this.reason = reason;
    const saved: SavedRole = { state, epoch: this.epoch, at: this.o.clock.now(), reason };
    writeFileAtomic(join(this.o.dataDir, CONSOLE_ROLE_FILE), JSON.stringify(saved));
    this.o.cluster.updateMeta({ role: this.announcedRole, epoch: this.epoch });
  }

  private schedulePull(delayMs: number): void {
    if (this.stopped || this.state === 'console') return;
    this.o.clock.clearTimeout(this.syncTimer);
    this.syncTimer = this.o.clock.setTimeout(() => {
      void this.pull().finally(() => this.schedulePull(this.o.pollingDelayMs));
    }, delayMs);
  }

  /**
   * One pull from the console: configuration documents, audit records, admin users and
   * tokens. Every request carries this node's proof of admission and every answer must carry
   * the console's (role-proofs.ts): members that only claim the console role are skipped, the
   * most likely (highest epoch) first.
   */
  private async pull(): Promise<void> {
    if (this.pulling || this.state === 'console') return;
    const authority = this.authority;
    if (!authority) {
      this.warnNotAdmitted();
      return;
    }
    const candidates = this.o.cluster.consoleCandidates?.() ?? [this.o.cluster.activeConsole()].filter((m): m is Member => m !== undefined);
    if (candidates.length === 0) return;
    this.pulling = true;
    try {
      for (const console of candidates) {
        try {
          await this.pullFrom(console, authority);
          return;
        } catch (err) {
          if (isCohortError(err, 'CONSOLE_ROLE_UNPROVEN') && !this.warnedUnproven.has(console.id) && this.warnedUnproven.size < 1000) {
            this.warnedUnproven.add(console.id);
            this.o.log.error({ code: err.code, node: console.id, address: console.address }, err.message);
          } else {
            this.o.log.debug({ err, console: console.id }, 'could not pull from the console');
          }
        }
      }
    } finally {
      this.pulling = false;
    }
  }

  /** A request body with this node's proof of admission for `method` to `console`. */
  private proven<T extends object>(authority: ConsoleAuthority, method: string, console: Member, body: T): T & { proof: ReplicaProof } {
    return { ...body, proof: replicaProof(authority, method, this.o.nodeId, console.id, this.o.clock.now()) };
  }

  /** Calls `method` on `console` with a proof and returns its answer once the console's signature checks out. */
  private async provenCall<M extends ProvenMethod>(authority: ConsoleAuthority, console: Member, method: M, body: Omit<RequestOf<ConsoleMethods, M>, 'proof'>): Promise<Omit<AnswerOf<ConsoleMethods, M>, 'proof'>> {
    return this.checkedCall(authority, console, method, this.proven(authority, method, console, body) as RequestOf<ConsoleMethods, M> & { proof: ReplicaProof });
  }

  /** Calls `method` with `request` (which carries this node's proof) and checks the console's signature of the answer. */
  private async checkedCall<M extends ProvenMethod>(authority: ConsoleAuthority, console: Member, method: M, request: RequestOf<ConsoleMethods, M> & { proof: ReplicaProof }): Promise<Omit<AnswerOf<ConsoleMethods, M>, 'proof'>> {
    const answer = await this.replicaRpc.call(console.address, method, request, { timeoutMs: this.callTimeoutMs });
    // Answers are not checked on arrival (rpc/protocol.ts): an empty one fails the signature check below.
    const { proof, ...content } = answer ?? ({} as AnswerOf<ConsoleMethods, M>);
    checkAnswer(authority, method, request.proof.nonce, content, proof, console.id);
    return content;
  }

  private async pullFrom(console: Member, authority: ConsoleAuthority): Promise<void> {
    for (;;) {
      const request = this.proven(authority, 'config.export', console, await this.exportRequest());
      const answer = await this.checkedCall(authority, console, 'config.export', request);
      if (answer.epoch < this.epoch) return; // an older console: nothing to take from it
      // Before the documents it opens: a replica holds its console's key from its first pull.
      if (answer.secretsKey !== undefined && this.secretKeys.adopt(openKeyFromConsole(authority, request.proof.nonce, answer.secretsKey, console.id))) {
        this.o.log.info({ console: console.id, keyId: this.secretKeys.currentId }, `took the console's key of the secrets at rest (DATA_DIR/${SECRETS_KEY_FILE})`);
      }
      if (answer.diverged) {
        if (!(await this.resync(console, authority))) return; // nothing to drop after all: try again at the next pull
        continue;
      }
      await this.o.repository.importConfigDocuments(answer.documents, answer.epoch);
      await this.o.repository.importAudit(answer.audit);
      if (answer.epoch > this.epoch) {
        this.epoch = answer.epoch;
        this.o.cluster.updateMeta({ epoch: this.epoch });
      }
      if (answer.documents.length === 0 && answer.audit.length === 0) break;
    }
    await this.o.repository.importAdminUsers((await this.provenCall(authority, console, 'config.users', {})).items);
    await this.o.repository.importAdminTokens((await this.provenCall(authority, console, 'config.tokens', {})).items);
    this.lastPull = this.o.clock.now();
  }

  /** `body` with this node's proof for `method` (a resync runs only on a node that holds the authority). */
  private provenBody<T extends object>(method: string, console: Member, body: T): T {
    return this.authority ? this.proven(this.authority, method, console, body) : body;
  }

  private warnNotAdmitted(): void {
    if (this.warnedNotAdmitted) return;
    this.warnedNotAdmitted = true;
    this.o.log.error(
      { code: 'CONSOLE_ROLE_UNPROVEN', file: join(this.o.dataDir, AUTHORITY_KEY_FILE) },
      `this replica is not admitted: it holds no console authority, so the console gives it nothing. Copy ${AUTHORITY_KEY_FILE} from the console's data directory into this node's (owner-only permissions), then restart it`,
    );
  }

  private get callTimeoutMs(): number {
    return Math.max(this.o.pollingDelayMs, 2000);
  }

  /** What this node holds last, for the console to check it holds the same. */
  private async exportRequest(): Promise<ExportRequest> {
    const head = await this.o.repository.getCurrentConfig();
    const [lastAudit] = await this.o.repository.listAudit({ limit: 1 });
    const [lastDoc] = head.version > 0 ? await this.o.repository.listConfigVersions({ beforeVersion: head.version + 1, limit: 1 }) : [];
    return {
      sinceVersion: head.version,
      sinceAuditId: lastAudit?.id ?? 0,
      ...(lastDoc ? { sinceDocument: { epoch: lastDoc.epoch, hash: lastDoc.hash } } : {}),
      ...(lastAudit ? { sinceAudit: lastAudit } : {}),
    };
  }

  /**
   * Re-syncs from the fork point with `console`: keeps the versions dropped in a file, hands the
   * audit records dropped to the console, then drops both. False when there was nothing to drop.
   */
  private async resync(console: Member, authority: ConsoleAuthority): Promise<boolean> {
    const { repository, log } = this.o;
    // Each page of the console's history must carry its signature (CONSOLE_ROLE_UNPROVEN
    // otherwise, and nothing is dropped): the fork point decides what this node drops.
    const history = <T>(what: HistoryRequest['what']) => async (before: number | undefined) => {
      const page = await this.provenCall(authority, console, 'config.history', { what, before, limit: HISTORY_PAGE } satisfies Omit<HistoryRequest, 'proof'>);
      if (!Array.isArray(page.items)) throw new CohortError('CONSOLE_ROLE_UNPROVEN', `${console.id} answered config.history without a page of history: nothing taken from it`);
      // Signed by the console authority (checkedCall): its pages hold the kind of record asked.
      return page.items as T[];
    };
    const forkVersion = await forkPoint<ConfigVersionSummary>(
      (before) => repository.listConfigVersions({ beforeVersion: before, limit: HISTORY_PAGE }),
      history<ConfigVersionSummary>('versions'),
      (v) => v.version,
      sameVersion,
    );
    const forkAuditId = await forkPoint<AuditRecord>((before) => repository.listAudit({ beforeId: before, limit: HISTORY_PAGE }), history<AuditRecord>('audit'), (r) => r.id, sameAuditRecord);
    const documents = await readAll((after) => repository.listConfigDocuments(after, HISTORY_PAGE), forkVersion, (d: ConfigDocument) => d.version);
    const audit = await readAll((after) => repository.listAudit({ sinceId: after, limit: HISTORY_PAGE }), forkAuditId, (r: AuditRecord) => r.id);
    if (documents.length === 0 && audit.length === 0) return false;
    let keptAs: string | undefined;
    if (documents.length > 0) {
      keptAs = join(this.o.dataDir, `${DROPPED_CONFIG_PREFIX}${this.o.clock.now()}.json`);
      writeFileAtomic(keptAs, JSON.stringify({ console: console.id, forkVersion, documents }, null, 2));
    }
    for (let i = 0; i < audit.length; i += HISTORY_PAGE) {
      await this.replicaRpc.call(console.address, 'config.discarded', this.provenBody('config.discarded', console, { records: audit.slice(i, i + HISTORY_PAGE) } satisfies DiscardedRequest), { timeoutMs: this.callTimeoutMs });
    }
    await repository.truncateHistory(forkVersion, forkAuditId);
    log.warn(
      {
        console: console.id,
        forkVersion,
        forkAuditId,
        dropped: documents.map((d) => ({ version: d.version, section: d.section, epoch: d.epoch, hash: d.hash })),
        keptAs,
        auditRecordsHandedOver: audit.length,
      },
      `history re-synced from the fork point with console ${console.id}: dropped ${documents.length} version(s) after version ${forkVersion}${keptAs ? ` (kept in ${keptAs})` : ''} and ${audit.length} audit record(s) after record ${forkAuditId} (kept by the console as config.discarded)`,
    );
    return true;
  }
}

/** Every entry after `after`, a page at a time (oldest first). */
async function readAll<T>(page: (after: number) => Promise<T[]>, after: number, idOf: (entry: T) => number): Promise<T[]> {
  const all: T[] = [];
  for (let from = after; ; ) {
    const next = await page(from);
    if (next.length === 0) return all;
    all.push(...next);
    from = idOf(next.at(-1)!);
  }
}

function readSavedRole(path: string): SavedRole | undefined {
  try {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as SavedRole;
    return saved.state === 'console' || saved.state === 'demoted' ? saved : undefined;
  } catch {
    return undefined;
  }
}
