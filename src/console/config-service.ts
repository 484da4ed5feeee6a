/**
 * The console's configuration: sections read and written through the repository, each save
 * validated first (an invalid document is refused and stores nothing), made a new version
 * with the console's epoch and a content hash, and audited with who, which node, the
 * versions before and after and a summary of what changed. Listeners hear of every save
 * (replication pushes it to the engines).
 *
 * A node that is not the active console (a replica, or a console demoted after a promotion)
 * refuses writes with CONSOLE_NOT_ACTIVE; the repository refuses a stale epoch as well.
 */
import { sha256 } from '../http/bearer-auth.js';
import type { Clock } from '../core/clock.js';
import { CohortError, isCohortError } from '../core/errors.js';
import { randomToken } from '../core/ids.js';
import type { ConfigDocument, CurrentConfig, Repository } from '../repository/repository.js';
import type { Principal } from './admin-auth.js';
import { MANAGED_SECTIONS, summarizeChange, validateSection } from './config-sections.js';
import type { ApiKeyScope, ConfigSection } from '../policy/config-sections.js';
import { parseSchedule, type ScheduleDefinition } from '../scheduler/schedule-definition.js';

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
  ) {}

  onSaved(listener: (doc: ConfigDocument) => void): void {
    this.listeners.push(listener);
  }

  current(): Promise<CurrentConfig> {
    return this.repository.getCurrentConfig();
  }

  async get(section: ConfigSection): Promise<SectionView> {
    const doc = await this.repository.getConfigDocument(section);
    if (!doc) return { section, version: null, epoch: null, hash: null, createdAt: null, author: null, content: EMPTY_SECTIONS[section] };
    return { section, version: doc.version, epoch: doc.epoch, hash: doc.hash, createdAt: doc.createdAt, author: doc.author, content: doc.content };
  }

  /** PUT of a section by an operator: refused for sections with their own API. */
  async put(section: ConfigSection, content: unknown, by: Principal): Promise<ConfigDocument> {
    const managedBy = MANAGED_SECTIONS[section];
    if (managedBy) throw new CohortError('CONSOLE_SECTION_MANAGED', `the ${section} section is written through ${managedBy}`, { section, managedBy });
    validateSection(section, content);
    return this.save(section, () => content, by.user);
  }

  /** A new API key of `scope` (default `runtime`): stored as a hash; the key itself is in the answer only. */
  async createApiKey(name: string, by: Principal, scope: ApiKeyScope = 'runtime'): Promise<{ id: string; name: string; key: string; scope: ApiKeyScope; createdAt: number }> {
    const key = randomToken(32);
    const entry: ApiKeyEntry = { id: randomToken(9), name, hash: sha256(key).toString('hex'), createdAt: this.clock.now(), createdBy: by.user, scope };
    await this.save('api-keys', (keys) => ({ keys: [...(keys as { keys: ApiKeyEntry[] }).keys, entry] }), by.user, `api-keys: created key ${entry.id} (${name}), scope ${scope}`);
    return { id: entry.id, name, key, scope, createdAt: entry.createdAt };
  }

  async listApiKeys(): Promise<Array<Omit<ApiKeyEntry, 'hash'>>> {
    const { content } = await this.get('api-keys');
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

  /** Creates or replaces schedule `id`; SCHEDULE_INVALID (nothing saved) when it does not validate. */
  async putSchedule(id: string, raw: unknown, by: Principal): Promise<ScheduleDefinition> {
    const body = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    if (body.id !== undefined && body.id !== id) throw new CohortError('SCHEDULE_INVALID', `schedule ${id}: the body names another id (${String(body.id)})`);
    const def = parseSchedule({ ...body, id });
    const existed = ((await this.get('schedules')).content as { schedules: ScheduleDefinition[] }).schedules.some((d) => d.id === id);
    await this.save(
      'schedules',
      (content) => {
        const list = (content as { schedules: ScheduleDefinition[] }).schedules;
        return { schedules: [...list.filter((d) => d.id !== id), def] };
      },
      by.user,
      `schedules: ${existed ? 'replaced' : 'created'} ${id} (${def.type}, ${def.cron !== undefined ? `cron ${def.cron} ${def.timezone}` : `every ${def.intervalSeconds} s`}${def.enabled ? '' : ', disabled'})`,
    );
    return def;
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
   * Saves a new version of `section` made by `change` from the latest content. Another save
   * between the read and the write (REPO_VERSION_CONFLICT) makes it read and try again.
   */
  private async save(section: ConfigSection, change: (content: unknown) => unknown, author: string, summary?: string): Promise<ConfigDocument> {
    if (!this.isActive()) throw new CohortError('CONSOLE_NOT_ACTIVE', 'this node is not the active console: change the configuration on the console');
    for (let attempt = 0; ; attempt++) {
      const head = await this.repository.getCurrentConfig();
      const before = head.sections[section]?.content;
      const content = change(before ?? EMPTY_SECTIONS[section]);
      validateSection(section, content);
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
