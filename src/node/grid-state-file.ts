/**
 * What an engine's grid holds, saved at a graceful stop and loaded at the next start
 * (SPEC section 4, durability): one JSON record per line in DATA_DIR/grid-state.ndjson,
 * written to a temporary file and renamed, so a crash while saving leaves the previous file.
 * Loaded records merge like any replica's (newest version wins), then the engine reconciles
 * with the cluster.
 */
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { GridStore, RecordChange } from '../state/grid/grid-store.js';

export const GRID_STATE_FILE = 'grid-state.ndjson';

/** When the saved state was written (ms since the epoch), or undefined when there is none. */
export function savedGridStateTime(dataDir: string): number | undefined {
  try {
    return statSync(join(dataDir, GRID_STATE_FILE)).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Drops a saved state without loading it. */
export function discardGridState(dataDir: string): void {
  rmSync(join(dataDir, GRID_STATE_FILE), { force: true });
}

/** Writes every unexpired record; resolves with how many. */
export async function saveGridState(store: GridStore, dataDir: string): Promise<number> {
  const path = join(dataDir, GRID_STATE_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  const out = createWriteStream(tmp, { mode: 0o600 });
  let n = 0;
  for (const change of store.exportAll()) {
    if (!out.write(`${JSON.stringify(change)}\n`)) await once(out, 'drain');
    n++;
  }
  out.end();
  await once(out, 'close');
  renameSync(tmp, path);
  return n;
}

/**
 * Loads the saved records (expired ones are dropped by merge) and removes the file, so an
 * engine that crashes later never reloads state older than what the cluster moved on to.
 * A damaged line is skipped and counted.
 */
export async function loadGridState(store: GridStore, dataDir: string): Promise<{ loaded: number; damaged: number } | undefined> {
  const path = join(dataDir, GRID_STATE_FILE);
  let input;
  try {
    input = createReadStream(path, { encoding: 'utf8' });
    await once(input, 'open');
  } catch {
    return undefined;
  }
  let loaded = 0;
  let damaged = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    try {
      const change = JSON.parse(line) as RecordChange;
      if (typeof change.ns !== 'string' || typeof change.key !== 'string' || typeof change.record?.version !== 'number') throw new Error('not a record');
      if (store.merge(change)) loaded++;
    } catch {
      damaged++;
    }
  }
  rmSync(path, { force: true });
  return { loaded, damaged };
}
