/**
 * What an engine's grid holds, saved at a graceful stop and loaded at the next start:
 * DATA_DIR/grid-state.tsv.
 *
 * Layout: a header line, one record a line (state/grid/record-lines.ts: values are copied as
 * the JSON text the store keeps, so a million sessions save and load in seconds), and a
 * fixed-length trailer with the record count and the SHA-256 of everything before it.
 *
 * Saving streams the records to a temporary file (a piece of about a megabyte at a time, the
 * next made only once the file took the last, so no partition is ever one string), fsyncs it, renames it over the previous file and fsyncs
 * the directory: a crash while saving leaves the previous file whole. Loading reads the file
 * twice: once to check its checksum, then to parse and merge its lines (`loadGridState`). A
 * damaged file changes nothing: it is renamed `grid-state.tsv.damaged` (GRID_STATE_DAMAGED) and the engine takes its state
 * from the cluster.
 *
 * The file is kept after it is loaded, until the next successful save replaces it. An engine
 * killed before that save (during its start-up sync, or any time later) finds it again at its
 * next start: removing it at load time made a full restart whose start was interrupted come
 * up with nothing at all. Keeping it brings back the risk that removal guarded against: a file
 * loaded long after the cluster moved on could bring back records deleted meanwhile, once the
 * cluster has forgotten their tombstones (TOMBSTONE_MS after each deletion; a tombstone's newer
 * version beats the saved copy, so deletions younger than that stay deleted). So a saved state
 * is not loaded (`staleGridStateReason`) when:
 *
 * - the engine rejoins a running cluster and the file is older than TOMBSTONE_MS (the others
 *   hold newer state), or
 * - the engine went on to serve after it loaded the file (it wrote `grid-state.tsv.served`
 *   when it began to serve: from then on the cluster changes what the file holds), more than
 *   TOMBSTONE_MS ago, whether others are running or not: every deletion made since it began
 *   to serve may be forgotten. An engine stopped before it served (its start-up sync did not
 *   finish) leaves no such mark, and a full stop and start loads its file however old it is,
 *   since nothing changed while every engine was down.
 *
 * A file not loaded for these reasons is renamed `grid-state.tsv.stale` (replacing an older
 * one) rather than removed, for an operator to inspect.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CohortError } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/files.js';
import { decodeUtf8 } from '../../core/utf8.js';
import { TOMBSTONE_MS, type GridStore, type RecordChange } from './grid-store.js';
import { parseRecordLine, recordLine } from './record-lines.js';

export const GRID_STATE_FILE = 'grid-state.tsv';
/** The ids of the engines the cluster had when this engine last looked (see `readRememberedEngines`). */
export const GRID_ENGINES_FILE = 'grid-engines.json';
/** The replay ids this engine held as a witness for other engines' partitions (replay-witnesses.ts), saved at a graceful stop. */
export const GRID_WITNESSES_FILE = 'grid-witnesses.json';
/** Written when the engine begins to serve after a saved state was written (see the header). */
const SERVED_SUFFIX = '.served';
/** What a saved state not loaded because it is too old is renamed to. */
const STALE_SUFFIX = '.stale';
const HEADER = 'cohort-grid-state\t1\n';
/** `#end <count, 12 digits> <sha256, 64 hex>\n`: fixed length, so it is found without a scan. */
const TRAILER_BYTES = 5 + 12 + 1 + 64 + 1;
/** Lines are written in pieces of about this size: few writes for small records, one for a large one. */
const WRITE_CHUNK_CHARS = 1 << 20;
/** Bytes read at a time while loading (exported for the tests that put lines across its edges). */
export const READ_CHUNK_BYTES = 4 << 20;
/** The temporary files of saves (`grid-state.tsv.<pid>.tmp`). */
const TMP_NAME = /^grid-state\.tsv\.\d+\.tmp$/;

/** A saved state on disk: when it was written and, if the engine served after that, since when. */
export interface SavedGridState {
  savedAt: number;
  servedSince?: number;
}

/** The saved state in `dataDir`, or undefined when there is none. */
export function savedGridState(dataDir: string): SavedGridState | undefined {
  const path = join(dataDir, GRID_STATE_FILE);
  let savedAt: number;
  try {
    savedAt = statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
  try {
    // A mark older than the file belongs to an earlier file (a crash between a save's rename
    // and its removal of the mark).
    const markedAt = statSync(`${path}${SERVED_SUFFIX}`).mtimeMs;
    if (markedAt >= savedAt) return { savedAt, servedSince: markedAt };
  } catch {
    // never served since it was written
  }
  return { savedAt };
}

/**
 * Why `saved` must not be loaded at `now` (see the header), or undefined when it may be.
 * `othersRunning`: other engines of the cluster are active.
 */
export function staleGridStateReason(saved: SavedGridState, now: number, othersRunning: boolean): string | undefined {
  if (saved.servedSince !== undefined && now - saved.servedSince > TOMBSTONE_MS) {
    return `this engine served from it for longer than the cluster remembers deletions (${TOMBSTONE_MS} ms) and then stopped without saving`;
  }
  if (othersRunning && now - saved.savedAt > TOMBSTONE_MS) {
    return `it is older than the cluster remembers deletions (${TOMBSTONE_MS} ms) and other engines are running`;
  }
  return undefined;
}

/** Notes that the engine now serves: the saved state stops being the newest word on what it held. */
export function markGridStateServed(dataDir: string): void {
  const path = join(dataDir, GRID_STATE_FILE);
  if (existsSync(path)) writeFileSync(`${path}${SERVED_SUFFIX}`, `${new Date().toISOString()}\n`, { mode: 0o600 });
}

/** Renames the saved state aside (`grid-state.tsv.stale`) without loading it; returns the new path. */
export function setGridStateAside(dataDir: string): string {
  const path = join(dataDir, GRID_STATE_FILE);
  renameSync(path, `${path}${STALE_SUFFIX}`);
  rmSync(`${path}${SERVED_SUFFIX}`, { force: true });
  return `${path}${STALE_SUFFIX}`;
}

/** Writes every unexpired record, replacing the previous saved state; resolves with how many. */
export async function saveGridState(store: GridStore, dataDir: string): Promise<number> {
  const path = join(dataDir, GRID_STATE_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  const hash = createHash('sha256');
  let n = 0;
  // Pieces of about WRITE_CHUNK_CHARS, made a record at a time and written one at a time: the
  // next piece is made only once the file has taken the last (back-pressure), so memory holds
  // one piece, never a partition.
  function* pieces(): Generator<Buffer> {
    const piece = (text: string): Buffer => {
      const bytes = Buffer.from(text, 'utf8');
      hash.update(bytes);
      return bytes;
    };
    let chunk = HEADER;
    for (const p of store.partitions()) {
      for (const [ns, key, record] of store.records(p)) {
        chunk += recordLine(ns, key, record);
        n++;
        if (chunk.length >= WRITE_CHUNK_CHARS) {
          yield piece(chunk);
          chunk = '';
        }
      }
    }
    yield piece(chunk);
    yield Buffer.from(`#end\t${String(n).padStart(12, '0')}\t${hash.digest('hex')}\n`, 'utf8');
  }
  // A save cut short by a crash leaves its temporary file (named after its process): gone now.
  for (const name of readdirSync(dataDir)) if (TMP_NAME.test(name)) rmSync(join(dataDir, name), { force: true });
  const file = await open(tmp, 'w', 0o600);
  try {
    for (const piece of pieces()) {
      for (let offset = 0; offset < piece.length; ) offset += (await file.write(piece, offset, piece.length - offset)).bytesWritten;
    }
    await file.sync();
  } catch (err) {
    await file.close().catch(() => undefined);
    rmSync(tmp, { force: true });
    throw err;
  }
  await file.close();
  renameSync(tmp, path);
  await syncDirectory(dataDir);
  // This file is now the newest word on what the engine holds.
  rmSync(`${path}${SERVED_SUFFIX}`, { force: true });
  return n;
}

/**
 * Loads the saved records (expired ones are dropped by merge) and keeps the file (see the
 * header). A damaged file rejects with GRID_STATE_DAMAGED, changes nothing, and is renamed
 * `grid-state.tsv.damaged`.
 *
 * The file is read twice. First its checksum and trailer are checked, without decoding a
 * byte: a file cut short or changed anywhere is refused before anything is merged. Then its
 * lines are parsed and merged as they are read, so no record is held twice (once parsed,
 * once stored: a million parsed records kept until the last line was read cost a third of
 * the load's time, spent by the collector). A line that is not a record, in a file whose
 * checksum matched (written by a faulty or foreign writer), empties the store again: a store
 * that held records before is therefore read through once more without merging, to find such
 * a line before anything is merged into it.
 */
export async function loadGridState(store: GridStore, dataDir: string): Promise<{ loaded: number; records: number } | undefined> {
  const path = join(dataDir, GRID_STATE_FILE);
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch {
    return undefined;
  }
  let damage: string | undefined;
  let result: { loaded: number; records: number } | undefined;
  try {
    const body = await checkedBody(file, (await file.stat()).size);
    if (typeof body === 'string') damage = body;
    else {
      const empty = store.size() === 0;
      if (!empty) {
        const checked = await readRecords(file, body, () => undefined);
        if (typeof checked === 'string') damage = checked;
      }
      if (damage === undefined) {
        let loaded = 0;
        const read = await readRecords(file, body, (change) => {
          if (store.merge(change)) loaded++;
        });
        if (typeof read === 'string') {
          // Only a store that was empty merges before every line was read (see above).
          store.clear();
          damage = read;
        } else result = { loaded, records: read };
      }
    }
  } finally {
    await file.close();
  }
  if (damage !== undefined) {
    renameSync(path, `${path}.damaged`);
    throw new CohortError('GRID_STATE_DAMAGED', `${path} is damaged (${damage}); kept as ${path}.damaged and not loaded`);
  }
  return result;
}

/** Where the records end and how many the trailer says there are. */
interface CheckedBody {
  end: number;
  records: number;
}

/** The body's extent when the trailer is there and the checksum matches it, else what is wrong. */
async function checkedBody(file: FileHandle, size: number): Promise<CheckedBody | string> {
  if (size < HEADER.length + TRAILER_BYTES) return 'too short';
  const end = size - TRAILER_BYTES;
  const trailerBytes = Buffer.alloc(TRAILER_BYTES);
  await file.read(trailerBytes, 0, TRAILER_BYTES, end);
  const match = /^#end\t(\d{12})\t([0-9a-f]{64})\n$/.exec(trailerBytes.toString('utf8'));
  if (!match) return 'no trailer: the save did not finish';
  const hash = createHash('sha256');
  const bytes = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, end));
  for (let position = 0; position < end; ) {
    const { bytesRead } = await file.read(bytes, 0, Math.min(bytes.length, end - position), position);
    if (bytesRead === 0) return 'shorter than it was a moment ago';
    hash.update(bytes.subarray(0, bytesRead));
    position += bytesRead;
  }
  if (match[2] !== hash.digest('hex')) return 'checksum mismatch';
  return { end, records: Number(match[1]) };
}

/**
 * Parses the body's lines, handing each record to `onRecord` until the first line that is
 * not one; resolves with how many records there were, or what is wrong.
 */
async function readRecords(file: FileHandle, body: CheckedBody, onRecord: (change: RecordChange) => void): Promise<number | string> {
  let lines = 0;
  let bad: string | undefined;
  const complete = await eachLine(file, body.end, (text, start, end) => {
    if (bad !== undefined) return;
    if (lines++ === 0) {
      if (`${text.slice(start, end)}\n` !== HEADER) bad = 'unknown header';
      return;
    }
    const change = parseRecordLine(text, start, end);
    if (change === undefined) bad = `line ${lines} is not a record`;
    else onRecord(change);
  });
  if (!complete) return 'the last line before the trailer is cut short';
  if (bad !== undefined) return bad;
  if (lines - 1 !== body.records) return `${lines - 1} records, the trailer says ${body.records}`;
  return lines - 1;
}

/**
 * Calls `onLine` for every line (without its newline: `text` from `start` to `end`) of the
 * first `end` bytes of `file`; resolves with false when the last line has no newline. The
 * complete lines of a piece are decoded at once (a newline byte is never part of a UTF-8
 * sequence, so no character is cut) and its lines are read in that text; the bytes after the
 * last newline are decoded with the first line of the next piece.
 */
async function eachLine(file: FileHandle, end: number, onLine: (text: string, start: number, end: number) => void): Promise<boolean> {
  let rest: Buffer | undefined;
  // One buffer for every read: a new one each time made the kernel fault in and clear fresh
  // pages for every piece (a tenth of a large load's CPU went to copying into them). The text
  // decoded from a piece is a copy, and the bytes kept for the next piece are copied out.
  const bytes = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, end));
  for (let position = 0; position < end; ) {
    const { bytesRead } = await file.read(bytes, 0, Math.min(bytes.length, end - position), position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const chunk = bytes.subarray(0, bytesRead);
    const lastNewline = chunk.lastIndexOf(10);
    if (lastNewline < 0) {
      rest = rest === undefined ? Buffer.from(chunk) : Buffer.concat([rest, chunk]);
      continue;
    }
    let from = 0;
    if (rest !== undefined) {
      // The line begun in the pieces before ends in this one.
      from = chunk.indexOf(10) + 1;
      const line = decodeUtf8(Buffer.concat([rest, chunk.subarray(0, from - 1)]));
      onLine(line, 0, line.length);
    }
    rest = lastNewline + 1 < chunk.length ? Buffer.from(chunk.subarray(lastNewline + 1)) : undefined;
    const text = decodeUtf8(chunk.subarray(from, lastNewline + 1));
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      onLine(text, start, nl);
      start = nl + 1;
    }
  }
  return rest === undefined;
}

/** Makes a rename in `dir` durable. Some platforms cannot open a directory: the rename is then as durable as they make it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort (see above)
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Where an engine keeps the state saved at its last graceful stop, as the grid engine
 * (grid-engine.ts) uses it: the files of this module in the node's data directory, or the
 * simulator's stand-in for a disk (sim/sim-grid-state.ts), which keeps the same record lines
 * in memory so that a seed replays exactly.
 */
export interface GridStateStorage {
  /** The saved state, or undefined when there is none. */
  saved(): SavedGridState | undefined;
  /** Merges the saved records into `store`; rejects with GRID_STATE_DAMAGED (changing nothing) when damaged. */
  load(store: GridStore): Promise<{ loaded: number; records: number } | undefined>;
  /** Replaces the saved state by what `store` holds; resolves with how many records. */
  save(store: GridStore): Promise<number>;
  /** The engine serves from now on (see the header). */
  markServed(): void;
  /** Keeps the saved state aside, not loaded; returns where it went. */
  setAside(): string;
  /** The ids of the engines this engine's previous run knew (`rememberEngines`), or undefined when none are kept. */
  rememberedEngines(): readonly string[] | undefined;
  /** Keeps the ids of the engines the cluster has now, for the next start (grid-engine.ts). */
  rememberEngines(ids: readonly string[]): void;
  /**
   * The replay ids held as a witness at the last graceful stop, with when each expires; an
   * empty list when none were kept, undefined when what was kept cannot be read.
   */
  witnesses(): Array<[id: string, expiresAt: number]> | undefined;
  /** Keeps the replay ids held as a witness, for the next start (replaces what was kept). */
  keepWitnesses(entries: ReadonlyArray<readonly [string, number]>): void;
}

/** The saved state as files in `dataDir` (a node's data directory). */
export function gridStateFiles(dataDir: string): GridStateStorage {
  return {
    saved: () => savedGridState(dataDir),
    load: (store) => loadGridState(store, dataDir),
    save: (store) => saveGridState(store, dataDir),
    markServed: () => markGridStateServed(dataDir),
    setAside: () => setGridStateAside(dataDir),
    rememberedEngines: () => readRememberedEngines(dataDir),
    rememberEngines: (ids) => writeFileAtomic(join(dataDir, GRID_ENGINES_FILE), `${JSON.stringify({ engines: ids }, null, 2)}\n`),
    witnesses: () => readWitnesses(dataDir),
    keepWitnesses: (entries) => writeFileAtomic(join(dataDir, GRID_WITNESSES_FILE), `${JSON.stringify({ witnesses: entries })}\n`),
  };
}

/**
 * DATA_DIR/grid-witnesses.json: `{"witnesses": [[id, expiresAt], ...]}`. None kept: an empty
 * list. Unreadable JSON, another shape, or an entry that is not an id and a time: undefined
 * (the engine says so and starts without them, as after a crash).
 */
function readWitnesses(dataDir: string): Array<[string, number]> | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, GRID_WITNESSES_FILE), 'utf8');
  } catch {
    return [];
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const entries = (parsed as { witnesses?: unknown } | null)?.witnesses;
  if (!Array.isArray(entries)) return undefined;
  const wellFormed = (e: unknown): e is [string, number] => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && e[0].length > 0 && Number.isFinite(e[1]);
  return entries.every(wellFormed) ? entries : undefined;
}

/**
 * The engines of the cluster as this engine last knew them: DATA_DIR/grid-engines.json,
 * rewritten whenever they change (not only at a graceful stop, so a crash keeps it true).
 * An unreadable or malformed file counts as none: the engine then starts as it would with an
 * empty data directory.
 */
function readRememberedEngines(dataDir: string): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(join(dataDir, GRID_ENGINES_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  const engines = (parsed as { engines?: unknown } | null)?.engines;
  return Array.isArray(engines) && engines.every((id) => typeof id === 'string') ? (engines as string[]) : undefined;
}
