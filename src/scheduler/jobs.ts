/**
 * What each job type does when its schedule fires. A job resolves when it succeeded and
 * throws (with the reason) when it failed; the scheduler records either in the run history.
 *
 * - `http`: one request (method, URL, headers, body) with a timeout; success on a 2xx answer.
 *   The request carries `x-cohort-schedule`, `x-cohort-fire-at` (ms) and `x-cohort-node`, so the
 *   receiving end can tell fire times apart (and spot a duplicate).
 * - `purge-expired`: asks every active engine to sweep expired runtime state now.
 * - `config-backup`: writes the whole current configuration (every section, version, epoch)
 *   to `backup.directory` as `cohort-config-v<version>-<time>.json`, as stored: its secrets
 *   stay sealed (a backup is opened with the console's DATA_DIR/secrets.key).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/files.js';
import type { Repository } from '../repository/repository.js';
import type { ScheduleDefinition } from './schedule-definition.js';

export interface JobContext {
  repository: Repository;
  nodeId: string;
  /** Asks every active engine to sweep expired state; resolves with how many records went. */
  purgeExpired(): Promise<number>;
}

export async function runJob(def: ScheduleDefinition, fireAt: number, ctx: JobContext): Promise<string> {
  switch (def.type) {
    case 'http': {
      const h = def.http!;
      const response = await fetch(h.url, {
        method: h.method,
        headers: { ...h.headers, 'x-cohort-schedule': def.id, 'x-cohort-fire-at': String(fireAt), 'x-cohort-node': ctx.nodeId },
        body: h.method === 'GET' || h.method === 'HEAD' ? undefined : h.body,
        signal: AbortSignal.timeout(h.timeoutMs ?? 10_000),
      });
      await response.arrayBuffer();
      if (response.status < 200 || response.status > 299) throw new Error(`${h.method} ${h.url} answered ${response.status}`);
      return `${h.method} ${h.url}: ${response.status}`;
    }
    case 'purge-expired':
      return `${await ctx.purgeExpired()} expired records removed`;
    case 'config-backup': {
      const current = await ctx.repository.getCurrentConfig();
      const dir = def.backup!.directory;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `cohort-config-v${current.version}-${new Date(fireAt).toISOString().replace(/[:.]/g, '-')}.json`);
      writeFileAtomic(file, `${JSON.stringify({ version: current.version, epoch: current.epoch, at: fireAt, sections: current.sections }, null, 2)}\n`);
      return `configuration version ${current.version} written to ${file}`;
    }
  }
}
