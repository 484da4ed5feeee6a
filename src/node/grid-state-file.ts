/**
 * What an engine's grid holds, saved at a graceful stop and loaded at the next start
 * (so a stop and start of the whole cluster keeps the runtime state): DATA_DIR/grid-state.tsv,
 * written to a temporary file and renamed, so a crash while saving leaves the previous file.
 *
 * Layout: a header line, one record a line (state/grid/record-lines.ts: values are copied as
 * the JSON text the store keeps, so a million sessions save and load in seconds), and a
 * fixed-length trailer with the record count and the SHA-256 of everything before it. A file
 * whose checksum or count does not match is damaged: nothing of it is loaded (GRID_STATE_DAMAGED),
 * the file is kept aside for inspection, and the engine takes its state from the cluster.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { CohortError } from '../core/errors.js';
import type { GridStore } from '../state/grid/grid-store.js';
import { parseRecordLine, partitionLines } from '../state/grid/record-lines.js';

export const GRID_STATE_FILE = 'grid-state.tsv';
const HEADER = 'cohort-grid-state\t1\n';
/** `#end <count, 12 digits> <sha256, 64 hex>\n`: fixed length, so it is found without a scan. */
const TRAILER_BYTES = 5 + 12 + 1 + 64 + 1;
const WRITE_CHUNK_CHARS = 1 << 20;
const READ_CHUNK_BYTES = 4 << 20;

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
  const hash = createHash('sha256');
  const write = async (text: string): Promise<void> => {
    const bytes = Buffer.from(text, 'utf8');
    hash.update(bytes);
    if (!out.write(bytes)) await once(out, 'drain');
  };
  await write(HEADER);
  let n = 0;
  let chunk = '';
  for (const p of store.partitions()) {
    const lines = partitionLines(store, p);
    n += lines.length;
    chunk += lines.join('');
    if (chunk.length >= WRITE_CHUNK_CHARS) {
      await write(chunk);
      chunk = '';
    }
  }
  await write(chunk);
  out.write(`#end\t${String(n).padStart(12, '0')}\t${hash.digest('hex')}\n`);
  out.end();
  await once(out, 'close');
  renameSync(tmp, path);
  return n;
}

/**
 * Loads the saved records (expired ones are dropped by merge) and removes the file, so an
 * engine that crashes later never reloads state older than what the cluster moved on to.
 * The checksum is verified before anything is merged; a damaged file rejects with
 * GRID_STATE_DAMAGED, changes nothing, and is renamed `grid-state.tsv.damaged`.
 */
export async function loadGridState(store: GridStore, dataDir: string): Promise<{ loaded: number; records: number } | undefined> {
  const path = join(dataDir, GRID_STATE_FILE);
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return undefined;
  }
  const damaged = (why: string): CohortError => {
    renameSync(path, `${path}.damaged`);
    return new CohortError('GRID_STATE_DAMAGED', `${path} is damaged (${why}); kept as ${path}.damaged and not loaded`);
  };
  if (size < HEADER.length + TRAILER_BYTES) throw damaged('too short');
  const bodyEnd = size - TRAILER_BYTES;

  // Pass 1: the checksum, before anything is merged.
  const hash = createHash('sha256');
  for await (const bytes of createReadStream(path, { start: 0, end: bodyEnd - 1, highWaterMark: READ_CHUNK_BYTES })) hash.update(bytes as Buffer);
  const trailer = await readText(path, bodyEnd, size - 1);
  const match = /^#end\t(\d{12})\t([0-9a-f]{64})\n$/.exec(trailer);
  if (!match) throw damaged('no trailer: the save did not finish');
  if (match[2] !== hash.digest('hex')) throw damaged('checksum mismatch');
  const expected = Number(match[1]);

  // Pass 2: the records.
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let header = true;
  let records = 0;
  let loaded = 0;
  const take = (line: string): void => {
    if (header) {
      if (`${line}\n` !== HEADER) throw damaged('unknown header');
      header = false;
      return;
    }
    const change = parseRecordLine(line);
    if (!change) throw damaged(`line ${records + 2} is not a record`);
    records++;
    if (store.merge(change)) loaded++;
  };
  for await (const bytes of createReadStream(path, { start: 0, end: bodyEnd - 1, highWaterMark: READ_CHUNK_BYTES })) {
    const text = rest + decoder.write(bytes as Buffer);
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      take(text.slice(start, end));
      start = end + 1;
    }
    rest = text.slice(start);
  }
  if (rest + decoder.end() !== '' || records !== expected) throw damaged(`${records} records, the trailer says ${expected}`);
  rmSync(path, { force: true });
  return { loaded, records };
}

async function readText(path: string, start: number, end: number): Promise<string> {
  const parts: Buffer[] = [];
  for await (const b of createReadStream(path, { start, end })) parts.push(b as Buffer);
  return Buffer.concat(parts).toString('utf8');
}
