/**
 * The console's configuration: sections read and written through the repository, each save
 * validated first (an invalid document is refused and stores nothing), made a new version
 * with the console's epoch and a content hash, and audited with who, which node, the
 * versions before and after and a summary of what changed. Listeners hear of every save
 * (replication pushes it to the engines).
 *
 * A node that is not the active console (a replica, or a console demoted after a promotion)
 * refuses writes with CONSOLE_NOT_ACTIVE; the repository refuses a stale epoch as well.
 *
 * Secrets (SECTION_SECRETS: the client secrets of `apis`, the HTTP headers of schedules) are
 * stored sealed (core/sealed-secrets.ts) and read back in clear by admins, redacted by
 * auditors. A save that carries the redaction placeholder keeps the secret stored at that
 * place, so a document read and saved back keeps its secrets.
 */
import { sha256 } from '../http/bearer-auth.js';
import type { Clock } from '../core/clock.js';
import { CohortError, isCohortError } from '../core/errors.js';
import { randomToken } from '../core/ids.js';
import { keepStoredSecrets, openSecrets, redactSecrets, sealSecrets, type SecretKeyring } from '../core/sealed-secrets.js';
import type { ConfigDocument, CurrentConfig, Repository } from '../repository/repository.js';
import type { Principal } from './admin-auth.js';
import { MANAGED_SECTIONS, summarizeChange, validateSection } from './config-sections.js';
import { SECTION_SECRETS, type ApiKeyScope, type ConfigSection } from '../policy/config-sections.js';
import { parseSchedule, type ScheduleDefinition } from '../scheduler/schedule-definition.js';
import { scheduleViews } from '../scheduler/scheduler.js';

/** What a section reads as before its first save. */
export const EMPTY_SECTIONS: Record<ConfigSection, unknown> = {
  runtime: {},
  services: {},
  apis: { apis: [] },
  'api-keys': { keys: [] },
  schedules: { schedules: [] },
};

export interface ApiKeyEntry {
  id: string;
  name: string;
  /** SHA-256 of the key, hex. */
  hash: string;
  createdAt: number;
  createdBy: string;
  /** What the key may do (absent: `runtime`, as keys issued before scopes existed). */
  scope?: ApiKeyScope;
}

/** How a reader sees secrets: `clear` (admins, and the console's own use), `redacted` (auditors). */
export type SecretView = 'clear' | 'redacted';

/** The view of secrets a principal gets: only admins see them in clear. */
export function secretViewOf(principal: Principal): SecretView {
  return principal.role === 'admin' ? 'clear' : 'redacted';
}

/** A section as the admin API shows it (version null: never saved). */
export interface SectionView {
  section: ConfigSection;
  version: number | null;
  epoch: number | null;
  hash: string | null;
  createdAt: number | null;
  author: string | null;
  content: unknown;
}

const SAVE_RETRIES = 5;

export class ConfigService {
  private readonly listeners: Array<(doc: ConfigDocument) => void> = [];

  constructor(
    private readonly repository: Repository,
    private readonly clock: Clock,
    private readonly node: string,
    /** False on a replica or a demoted console: writes are refused. */
    private readonly isActive: () => boolean,
    /** The keys secrets are sealed and opened with (the console's DATA_DIR/secrets.key). */
    private readonly secrets: SecretKeyring,
  ) {}

  onSaved(listener: (doc: ConfigDocument) => void): void {
    this.listeners.push(listener);
  }

  current(): Promise<CurrentConfig> {
    return this.repository.getCurrentConfig();
  }

  /** The latest version of `section`, its secrets as `view` says. */
  async get(section: ConfigSection, view: SecretView): Promise<SectionView> {
    const doc = await this.repository.getConfigDocument(section);
    if (!doc) return { section, version: null, epoch: null, hash: null, createdAt: null, author: null, content: EMPTY_SECTIONS[section] };
    return this.viewOf(doc, view);
  }

  /** Version `version` (of whichever section), its secrets as `view` says; REPO_NOT_FOUND when there is none. */
  async version(version: number, view: SecretView): Promise<SectionView> {
    const summary = (await this.repository.listConfigVersions({ beforeVersion: version + 1, limit: 1 }))[0];
    const doc = summary && summary.version === version ? await this.repository.getConfigDocument(summary.section, version) : undefined;
    if (!doc) throw new CohortError('REPO_NOT_FOUND', `no configuration version ${version}`);
    return this.viewOf(doc, view);
  }

  /** `content` of `section` as stored (sealed) turned into what `view` shows. */
  showSecrets(section: string, content: unknown, view: SecretView): unknown {
    const walk = SECTION_SECRETS[section as ConfigSection];
    if (!walk) return content;
    return view === 'clear' ? openSecrets(walk, content, this.secrets) : redactSecrets(walk, content);
  }

  private viewOf(doc: ConfigDocument, view: SecretView): SectionView {
    const content = this.showSecrets(doc.section, doc.content, view);
    return { section: doc.section as ConfigSection, version: doc.version, epoch: doc.epoch, hash: doc.hash, createdAt: doc.createdAt, author: doc.author, content };
  }

  /** PUT of a section by an operator: refused for sections with their own API. */
  async put(section: ConfigSection, content: unknown, by: Principal): Promise<ConfigDocument> {
    const managedBy = MANAGED_SECTIONS[section];
    if (managedBy) throw new CohortError('CONSOLE_SECTION_MANAGED', `the ${section} section is written through ${managedBy}`, { section, managedBy });
    validateSection(section, content);
    return this.save(section, (before) => this.keepStored(section, content, before, (problems) => new CohortError('CONSOLE_DOCUMENT_INVALID', `the ${section} document is not valid: ${problems.join('; ')}`, { section, errors: problems })), by.user);
  }

  /** `incoming` with every redaction placeholder replaced by the secret `stored` holds there; `refuse` lists what cannot be. */
  private keepStored(section: ConfigSection, incoming: unknown, stored: unknown, refuse: (problems: string[]) => CohortError): unknown {
    const walk = SECTION_SECRETS[section];
    if (!walk) return incoming;
    const { content, problems } = keepStoredSecrets(walk, incoming, stored, this.secrets);
    if (problems.length > 0) throw refuse(problems);
    return content;
  }

  /** The saved schedules with their jobs, headers as `view` says (scheduler.ts scheduleViews). */
  schedules(view: SecretView): ReturnType<typeof scheduleViews> {
    return scheduleViews(this.repository, this.secrets, view);
  }

  /** A new API key of `scope` (default `runtime`): stored as a hash; the key itself is in the answer only. */
  async createApiKey(name: string, by: Principal, scope: ApiKeyScope = 'runtime'): Promise<{ id: string; name: string; key: string; scope: ApiKeyScope; createdAt: number }> {
    const key = randomToken(32);
    const entry: ApiKeyEntry = { id: randomToken(9), name, hash: sha256(key).toString('hex'), createdAt: this.clock.now(), createdBy: by.user, scope };
    await this.save('api-keys', (keys) => ({ keys: [...(keys as { keys: ApiKeyEntry[] }).keys, entry] }), by.user, `api-keys: created key ${entry.id} (${name}), scope ${scope}`);
    return { id: entry.id, name, key, scope, createdAt: entry.createdAt };
  }

  async listApiKeys(): Promise<Array<Omit<ApiKeyEntry, 'hash'>>> {
    const { content } = await this.get('api-keys', 'clear');
    return (content as { keys: ApiKeyEntry[] }).keys.map(({ hash: _hash, ...rest }) => ({ ...rest, scope: rest.scope ?? 'runtime' }));
  }

  async deleteApiKey(id: string, by: Principal): Promise<void> {
    await this.save(
      'api-keys',
      (content) => {
        const keys = (content as { keys: ApiKeyEntry[] }).keys;
        if (!keys.some((k) => k.id === id)) throw new CohortError('ADMIN_NOT_FOUND', `no API key ${id}`);
        return { keys: keys.filter((k) => k.id !== id) };
      },
      by.user,
      `api-keys: deleted key ${id}`,
    );
  }

  /**
   * Creates or replaces schedule `id`; SCHEDULE_INVALID (nothing saved) when it does not
   * validate. Returns the saved schedule with its headers in clear (only admins save).
   */
  async putSchedule(id: string, raw: unknown, by: Principal): Promise<ScheduleDefinition> {
    const body = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    if (body.id !== undefined && body.id !== id) throw new CohortError('SCHEDULE_INVALID', `schedule ${id}: the body names another id (${String(body.id)})`);
    const def = parseSchedule({ ...body, id });
    const existed = ((await this.get('schedules', 'redacted')).content as { schedules: ScheduleDefinition[] }).schedules.some((d) => d.id === id);
    const doc = await this.save(
      'schedules',
      (content) => {
        const list = (content as { schedules: ScheduleDefinition[] }).schedules;
        const next = { schedules: [...list.filter((d) => d.id !== id), def] };
        return this.keepStored('schedules', next, content, (problems) => new CohortError('SCHEDULE_INVALID', `schedule ${id} is not valid: ${problems.join('; ')}`, { id, errors: problems }));
      },
      by.user,
      `schedules: ${existed ? 'replaced' : 'created'} ${id} (${def.type}, ${def.cron !== undefined ? `cron ${def.cron} ${def.timezone}` : `every ${def.intervalSeconds} s`}${def.enabled ? '' : ', disabled'})`,
    );
    const saved = (this.showSecrets('schedules', doc.content, 'clear') as { schedules: ScheduleDefinition[] }).schedules.find((d) => d.id === id);
    return saved ?? def;
  }

  async deleteSchedule(id: string, by: Principal): Promise<void> {
    await this.save(
      'schedules',
      (content) => {
        const list = (content as { schedules: ScheduleDefinition[] }).schedules;
        if (!list.some((d) => d.id === id)) throw new CohortError('SCHEDULE_NOT_FOUND', `no schedule ${id}`);
        return { schedules: list.filter((d) => d.id !== id) };
      },
      by.user,
      `schedules: deleted ${id}`,
    );
  }

  /**
   * Saves a new version of `section` made by `change` from the latest content as stored (its
   * secrets sealed; `change` may keep them so). The result is checked in clear against the
   * section's schema, then stored with every secret sealed. Another save between the read and
   * the write (REPO_VERSION_CONFLICT) makes it read and try again.
   */
  private async save(section: ConfigSection, change: (content: unknown) => unknown, author: string, summary?: string): Promise<ConfigDocument> {
    if (!this.isActive()) throw new CohortError('CONSOLE_NOT_ACTIVE', 'this node is not the active console: change the configuration on the console');
    const walk = SECTION_SECRETS[section];
    for (let attempt = 0; ; attempt++) {
      const head = await this.repository.getCurrentConfig();
      const before = head.sections[section]?.content;
      const proposed = change(before ?? EMPTY_SECTIONS[section]);
      validateSection(section, walk ? openSecrets(walk, proposed, this.secrets) : proposed);
      // Sealed after validation: the schema's bounds are those of the clear values.
      const content = walk ? sealSecrets(walk, proposed, this.secrets, before) : proposed;
      try {
        const doc = await this.repository.saveConfigDocument({
          section,
          content,
          author,
          node: this.node,
          summary: summary ?? summarizeChange(section, before, content),
          epoch: head.epoch,
          expectedVersion: head.version,
        });
        for (const l of this.listeners) l(doc);
        return doc;
      } catch (err) {
        if (!isCohortError(err, 'REPO_VERSION_CONFLICT') || attempt >= SAVE_RETRIES) throw err;
      }
    }
  }
}
