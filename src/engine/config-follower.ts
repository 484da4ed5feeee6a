/**
 * An engine's copy of the cluster configuration (docs/operations.md, "The console, the replica
 * and configuration").
 *
 * - Asks the active console (`config.fetch`) every `polling_delay`, and at once when the
 *   console says a version was saved (`config.changed`); applies what it gets, writes it to
 *   DATA_DIR/applied-config.json, and tells the console (`config.applied`).
 * - Starts with the file from its last run, so an engine whose console is away at its start
 *   still serves with the last configuration it had; keeps serving with it while the console
 *   is away.
 * - Ignores a configuration with a lower epoch than the one it holds: a console that returns
 *   after its replica was promoted cannot push its older configuration.
 * - Has a configuration once it applied one (fetched or from its file); until then the engine
 *   is not ready.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Member } from '../cluster/member-list.js';
import type { Rpc } from '../rpc/rpc.js';
import type { ConfigDocument } from '../repository/repository.js';
import { writeFileAtomic } from '../core/files.js';
import { runtimeSettings, type RuntimeSettings } from './runtime-settings.js';

export const APPLIED_CONFIG_FILE = 'applied-config.json';

/** `config.fetch`, asked of the console (console/config-publisher.ts answers it). */
export interface FetchRequest {
  version: number;
  epoch: number;
  /** When the asker applied `version` (engines), for the replication delay shown by the console. */
  appliedAt?: number;
  /** The asker could not apply the last configuration it got: why. */
  error?: string;
}

export interface FetchAnswer {
  epoch: number;
  version: number;
  /** Latest document of every section; absent when the asker is up to date. */
  sections?: Record<string, ConfigDocument>;
}


export interface AppliedConfig {
  epoch: number;
  version: number;
  appliedAt: number;
  sections: Record<string, ConfigDocument>;
}

export interface ConfigFollowerOptions {
  rpc: Rpc;
  clock: Clock;
  log: Logger;
  dataDir: string;
  pollingDelayMs: number;
  activeConsole(): Member | undefined;
}

export class ConfigFollower {
  private applied: AppliedConfig | undefined;
  private current: RuntimeSettings = runtimeSettings();
  private timer: TimerHandle | undefined;
  private fetching: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private lastError: string | undefined;
  private warnedStale = new Set<string>();

  constructor(private readonly o: ConfigFollowerOptions) {
    o.rpc.handle('config.changed', () => {
      this.fetchSoon();
      return true;
    });
    const saved = readApplied(join(o.dataDir, APPLIED_CONFIG_FILE), o.log);
    if (saved) {
      this.use(saved);
      o.log.info({ version: saved.version, epoch: saved.epoch }, 'configuration applied at the last run loaded');
    }
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

  start(): void {
    this.fetchSoon();
  }

  stop(): void {
    this.stopped = true;
    this.o.clock.clearTimeout(this.timer);
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

  private async fetch(): Promise<void> {
    const console = this.o.activeConsole();
    if (!console) return;
    const request: FetchRequest = { version: this.applied?.version ?? 0, epoch: this.applied?.epoch ?? -1, appliedAt: this.applied?.appliedAt, error: this.lastError };
    let answer: FetchAnswer;
    try {
      answer = await this.o.rpc.call<FetchAnswer>(console.address, 'config.fetch', request, { timeoutMs: this.o.pollingDelayMs });
    } catch (err) {
      this.o.log.debug({ err, console: console.id }, 'could not fetch the configuration; serving with the one applied');
      return;
    }
    if (this.applied && answer.epoch < this.applied.epoch) {
      const key = `${console.id}@${answer.epoch}`;
      if (!this.warnedStale.has(key)) {
        this.warnedStale.add(key);
        this.o.log.warn({ console: console.id, epoch: answer.epoch, ours: this.applied.epoch }, 'ignored a configuration with a lower epoch than the one applied (a console that was replaced)');
      }
      return;
    }
    if (!answer.sections && this.applied) return;
    const next: AppliedConfig = { epoch: answer.epoch, version: answer.version, appliedAt: this.o.clock.now(), sections: answer.sections ?? {} };
    try {
      this.use(next);
      writeFileAtomic(join(this.o.dataDir, APPLIED_CONFIG_FILE), JSON.stringify(next));
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.o.log.error({ err, version: answer.version }, 'could not apply the configuration');
      return;
    }
    this.o.log.info({ version: next.version, epoch: next.epoch, console: console.id }, 'configuration applied');
    this.o.rpc.notify(console.address, 'config.applied', { version: next.version, appliedAt: next.appliedAt });
  }

  private use(config: AppliedConfig): void {
    const content = (name: string): unknown => config.sections[name]?.content;
    this.current = runtimeSettings({ runtime: content('runtime'), services: content('services'), 'api-keys': content('api-keys') });
    this.applied = config;
  }
}

function readApplied(path: string, log: Logger): AppliedConfig | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as AppliedConfig;
    if (typeof parsed.version !== 'number' || typeof parsed.epoch !== 'number' || typeof parsed.sections !== 'object') throw new Error('not an applied configuration');
    return parsed;
  } catch (err) {
    log.error({ err, path }, 'the configuration saved at the last run is damaged; waiting for the console');
    return undefined;
  }
}
