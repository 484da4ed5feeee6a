/**
 * An engine's copy of the cluster configuration.
 *
 * - Asks the active console (`config.fetch`) every `polling_delay`, and at once when the
 *   console says a version was saved (`config.changed`); checks what it gets (every section's
 *   content digest and schema: applied-config.ts), applies it, writes it with its integrity
 *   code to DATA_DIR/applied-config.json, and tells the console (`config.applied`). A copy that
 *   fails the checks is not applied (ENGINE_CONFIG_REFUSED): the engine keeps what it had and
 *   reports the failure with its next fetch.
 * - Starts with the file from its last run, so an engine whose console is away at its start
 *   still serves with the last configuration it had; keeps serving with it while the console
 *   is away. The file is used only when its integrity code and every document check out; one
 *   that does not is refused (ENGINE_CONFIG_CACHE_INVALID, logged), renamed
 *   applied-config.json.damaged, and the engine asks the console for a full copy (`full`),
 *   not ready until it has one: it never serves with a configuration it cannot trust.
 * - Ignores a configuration with a lower epoch than the one it holds: a console that returns
 *   after its replica was promoted cannot push its older configuration.
 * - Has a configuration once it applied one (fetched or from its file); until then the engine
 *   is not ready, and `notReadyReason` says why.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../core/clock.js';
import { isCohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Member } from '../cluster/member-list.js';
import type { Rpc } from '../rpc/rpc.js';
import { configRpc, type ConfigRpc, type FetchAnswer, type FetchRequest } from '../policy/config-protocol.js';
import { writeFileAtomic } from '../core/files.js';
import { APPLIED_CONFIG_FILE, DAMAGED_SUFFIX, documentProblems, openAppliedConfig, sealAppliedConfig, type AppliedConfig, type SectionCheck } from './applied-config.js';
import { runtimeSettings, type RuntimeSettings } from './runtime-settings.js';
import { parsePublicKey, PINNED_KEY_FILE, publicKeyText, verifyStatement } from '../policy/console-authority.js';

export { APPLIED_CONFIG_FILE, type AppliedConfig } from './applied-config.js';

export type { FetchAnswer, FetchRequest } from '../policy/config-protocol.js';

/**
 * What the console signs in a `config.fetch` answer: epoch, version and each section's
 * version, epoch and content digest (each document's content is checked against its digest).
 */
export function fetchStatement(answer: Pick<FetchAnswer, 'epoch' | 'version' | 'sections'>): unknown {
  const sections = answer.sections
    ? Object.fromEntries(Object.entries(answer.sections).map(([name, d]) => [name, { section: d?.section, version: d?.version, epoch: d?.epoch, hash: d?.hash }]))
    : null;
  return { epoch: answer.epoch, version: answer.version, sections };
}

export interface ConfigFollowerOptions {
  rpc: Rpc;
  clock: Clock;
  log: Logger;
  dataDir: string;
  pollingDelayMs: number;
  /**
   * Told of every configuration applied from the console (not of the saved copy loaded at
   * start), with when the newest of its documents was saved there (the console's clock): the
   * node's metrics measure the apply delay with it.
   */
  onApplied?(version: number, savedAt: number | undefined, appliedAt: number): void;
  /** Keys of the saved file's integrity code (applied-config.ts `appliedConfigKeys`): the first signs. */
  integrityKeys: readonly Buffer[];
  /** Members claiming the console role, the most likely first (highest epoch): the first that proves it is followed. */
  consoles(): Member[];
  /**
   * The console authority's public key from the node configuration (`[cluster]
   * console_public_key`); without it the key is pinned at the first proven contact.
   */
  consoleKey?: KeyObject;
}

export class ConfigFollower {
  private applied: AppliedConfig | undefined;
  private current: RuntimeSettings = runtimeSettings();
  private timer: TimerHandle | undefined;
  private fetching: Promise<void> | undefined;
  private again = false;
  private started = false;
  private stopped = false;
  private lastError: string | undefined;
  /** Why the file saved at the last run was refused, until a configuration is applied. */
  private refusedCache: string | undefined;
  private check: SectionCheck | undefined;
  private warnedStale = new Set<string>();
  private warnedUnproven = new Set<string>();
  /** The console authority's key this engine follows: configured, pinned, or undefined until the first proven contact. */
  private consoleKey: KeyObject | undefined;
  /** A pinned key file that cannot be read: nothing is followed (no new pin) until an operator fixes it. */
  private readonly pinUnreadable: boolean;
  private readonly rpc: ConfigRpc;
  /** The console candidates last seen by `consolesChanged` (id@address, in order). */
  private consolesSeen = '';

  constructor(private readonly o: ConfigFollowerOptions) {
    const pinned = o.consoleKey ? undefined : readPinnedKey(join(o.dataDir, PINNED_KEY_FILE), o.log);
    this.consoleKey = o.consoleKey ?? (pinned === 'unreadable' ? undefined : pinned);
    this.pinUnreadable = pinned === 'unreadable';
    this.rpc = configRpc(o.rpc, o.log);
    this.rpc.handle('config.changed', () => {
      if (this.started) this.fetchSoon();
      return true;
    });
  }

  /** The settings of the configuration applied now. */
  settings(): RuntimeSettings {
    return this.current;
  }

  /** Version and epoch applied, undefined before any. */
  get state(): { version: number; epoch: number; appliedAt: number } | undefined {
    return this.applied && { version: this.applied.version, epoch: this.applied.epoch, appliedAt: this.applied.appliedAt };
  }

  get hasConfiguration(): boolean {
    return this.applied !== undefined;
  }

  /** Why the engine has no configuration to serve with; undefined once it has one. */
  notReadyReason(): string | undefined {
    if (this.applied) return undefined;
    if (!this.started) return 'loading the configuration saved at the last run';
    if (this.refusedCache) return `the configuration saved at the last run was refused (ENGINE_CONFIG_CACHE_INVALID: ${this.refusedCache}); waiting for a fresh copy from the console`;
    if (this.lastError) return `the configuration received from the console was refused (${this.lastError})`;
    return 'waiting for the configuration from the console';
  }

  /**
   * Loads the file saved at the last run (checked first), then fetches from the console.
   * The section schemas (and their validator) are loaded here rather than at import, so a
   * node that runs no engine never loads them.
   */
  async start(): Promise<void> {
    const { sectionErrors, isConfigSection } = await import('../policy/config-sections.js');
    this.check = (section, content) => (isConfigSection(section) ? sectionErrors(section, content) : []);
    if (this.stopped) return;
    this.loadSaved(this.check);
    this.started = true;
    this.consolesSeen = this.consoleSignature();
    this.fetchSoon();
  }

  stop(): void {
    this.stopped = true;
    this.o.clock.clearTimeout(this.timer);
  }

  private consoleSignature(): string {
    return this.o.consoles().map((m) => `${m.id}@${m.address}`).join(',');
  }

  /**
   * The cluster's members changed: when the members claiming the console role are not those
   * last seen (above all, the first one, as the engine joins), they are asked now rather than
   * at the next poll, so a starting engine has its configuration as soon as it has joined, not
   * up to `polling_delay` later.
   */
  consolesChanged(): void {
    if (!this.started || this.stopped) return;
    const seen = this.consoleSignature();
    if (seen === this.consolesSeen) return;
    this.consolesSeen = seen;
    if (seen !== '') this.fetchSoon();
  }

  private loadSaved(check: SectionCheck): void {
    const { log } = this.o;
    const path = join(this.o.dataDir, APPLIED_CONFIG_FILE);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.error({ err, path }, 'could not read the configuration saved at the last run; waiting for the console');
      return;
    }
    try {
      const saved = openAppliedConfig(text, this.o.integrityKeys, check);
      this.use(saved);
      log.info({ version: saved.version, epoch: saved.epoch }, 'configuration applied at the last run loaded');
    } catch (err) {
      if (!isCohortError(err, 'ENGINE_CONFIG_CACHE_INVALID')) throw err;
      this.refusedCache = err.message.slice(0, 500); // shown in every readiness answer
      const keptAs = `${path}${DAMAGED_SUFFIX}`;
      try {
        renameSync(path, keptAs);
      } catch (renameErr) {
        log.error({ err: renameErr, path }, 'could not move the refused configuration aside');
      }
      log.error({ code: err.code, reason: err.message, path, keptAs }, `refused the configuration saved at the last run (${err.code}: ${err.message}); kept as ${keptAs}; not ready until the console sends a fresh copy`);
    }
  }

  /** Fetches now (or right after the fetch in flight), then every polling_delay. */
  private fetchSoon(): void {
    if (this.stopped) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.o.clock.clearTimeout(this.timer);
    this.fetching = this.fetch().finally(() => {
      this.fetching = undefined;
      if (this.again) {
        this.again = false;
        this.fetchSoon();
      } else if (!this.stopped) {
        this.timer = this.o.clock.setTimeout(() => this.fetchSoon(), this.o.pollingDelayMs);
      }
    });
  }

  /**
   * Asks the members claiming the console role, the most likely first, and takes the first
   * answer signed by the console authority: a node that only claims the role (it holds the
   * cluster secret, not the authority's key) is skipped, and cannot keep the engine from
   * following the real console by claiming a higher epoch.
   */
  private async fetch(): Promise<void> {
    if (!this.check) return;
    for (const console of this.o.consoles()) {
      const fetched = await this.fetchFrom(console);
      if (fetched) {
        await this.take(console, fetched);
        return;
      }
    }
  }

  /** A proven answer of `console`, or undefined (unreachable, or not proven: logged once). */
  private async fetchFrom(console: Member): Promise<FetchAnswer | undefined> {
    const full = this.applied === undefined;
    const nonce = randomBytes(16).toString('base64url');
    const request: FetchRequest = { version: this.applied?.version ?? 0, epoch: this.applied?.epoch ?? -1, appliedAt: this.applied?.appliedAt, error: this.lastError, nonce, ...(full ? { full } : {}) };
    let answer: FetchAnswer;
    try {
      answer = await this.rpc.call(console.address, 'config.fetch', request, { timeoutMs: this.o.pollingDelayMs });
    } catch (err) {
      this.o.log.debug({ err, console: console.id }, 'could not fetch the configuration; serving with the one applied');
      return undefined;
    }
    const offered = typeof answer?.proof?.key === 'string' ? parsePublicKey(answer.proof.key) : undefined;
    const key = this.consoleKey ?? (this.pinUnreadable ? undefined : offered);
    if (!key || !verifyStatement(key, answer.proof, 'config-fetch', { nonce }, fetchStatement(answer))) {
      const warnKey = `${console.id}@${console.address}`;
      if (!this.warnedUnproven.has(warnKey) && this.warnedUnproven.size < 1000) {
        this.warnedUnproven.add(warnKey);
        this.o.log.error(
          { code: 'ENGINE_CONFIG_UNPROVEN', console: console.id, address: console.address },
          `ignored the configuration of ${console.id}: it is not signed by the console authority${this.consoleKey ? ' this engine follows' : ''} (a node that only claims the console role)`,
        );
      }
      return undefined;
    }
    if (!this.consoleKey) {
      // First proven contact: from now on only this authority's configurations are applied.
      this.consoleKey = key;
      writeFileAtomic(join(this.o.dataDir, PINNED_KEY_FILE), `${publicKeyText(key)}\n`);
      this.o.log.info({ console: console.id }, `pinned the console authority's key (DATA_DIR/${PINNED_KEY_FILE})`);
    }
    return answer;
  }

  private async take(console: Member, answer: FetchAnswer): Promise<void> {
    if (this.applied && answer.epoch < this.applied.epoch) {
      const key = `${console.id}@${answer.epoch}`;
      if (!this.warnedStale.has(key)) {
        this.warnedStale.add(key);
        this.o.log.warn({ console: console.id, epoch: answer.epoch, ours: this.applied.epoch }, 'ignored a configuration with a lower epoch than the one applied (a console that was replaced)');
      }
      return;
    }
    if (!answer.sections && this.applied) return;
    const sections = answer.sections ?? {};
    const problems = documentProblems(sections, this.check!);
    if (problems.length > 0) {
      const error = `ENGINE_CONFIG_REFUSED: ${problems.join('; ')}`.slice(0, 500);
      // Refused again at every poll until the console's copy changes: logged once per problem.
      if (error === this.lastError) return;
      this.lastError = error;
      this.o.log.error({ code: 'ENGINE_CONFIG_REFUSED', problems, version: answer.version, console: console.id }, 'refused the configuration received from the console; keeping the one applied');
      return;
    }
    const next: AppliedConfig = { epoch: answer.epoch, version: answer.version, appliedAt: this.o.clock.now(), sections };
    try {
      this.use(next);
      writeFileAtomic(join(this.o.dataDir, APPLIED_CONFIG_FILE), sealAppliedConfig(next, this.o.integrityKeys[0]!));
      this.lastError = undefined;
      this.refusedCache = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.o.log.error({ err, version: answer.version }, 'could not apply the configuration');
      return;
    }
    this.o.log.info({ version: next.version, epoch: next.epoch, console: console.id }, 'configuration applied');
    const savedAt = Object.values(sections).reduce<number | undefined>((newest, doc) => (newest === undefined || doc.createdAt > newest ? doc.createdAt : newest), undefined);
    this.o.onApplied?.(next.version, savedAt, next.appliedAt);
    this.rpc.notify(console.address, 'config.applied', { version: next.version, appliedAt: next.appliedAt });
  }

  private use(config: AppliedConfig): void {
    const content = (name: string): unknown => config.sections[name]?.content;
    this.current = runtimeSettings({ runtime: content('runtime'), services: content('services'), 'api-keys': content('api-keys'), apis: content('apis') });
    for (const error of this.current.accessErrors) this.o.log.error({ code: 'ACCESS_UNAVAILABLE', error }, 'an API definition cannot be used: every request it matches is denied');
    this.applied = config;
  }
}

/**
 * The key pinned at an earlier run; undefined when none; `unreadable` when the file is there
 * but holds no key (logged): the engine then follows no console rather than pin another.
 */
function readPinnedKey(path: string, log: Logger): KeyObject | 'unreadable' | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    log.error({ err, path }, 'cannot read the pinned console authority key: no configuration is taken until it is readable');
    return 'unreadable';
  }
  const key = parsePublicKey(text);
  if (key) return key;
  log.error({ path }, 'the pinned console authority key is not an Ed25519 public key: no configuration is taken until it is fixed (or deleted, to pin again)');
  return 'unreadable';
}
