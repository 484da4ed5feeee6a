/**
 * Records as text lines, for bulk transfers between engines and the saved grid state: one
 * record a line, nine tab-separated fields
 *
 *     namespace  partition  version  expiresAt  deleted(0|1)  key(JSON)  index(JSON or empty)  value(JSON)  origin
 *
 * `origin` (the engine whose write made the version; may be empty) came last, after lines of
 * eight fields were already saved: those still parse, without an origin.
 *
 * The value is the record's stored JSON text, copied as it is, so a transfer neither
 * serializes nor parses values (the cost that made JSON envelopes too slow for a million
 * sessions). JSON text never holds a raw tab or newline, so splitting is unambiguous.
 *
 * A partition larger than one bulk message moves as several slices (`partitionSlice`), in
 * (namespace, key) order, each resumed after the last record of the one before, so no
 * partition's size is limited by the transport's frame size.
 */
import { NAMESPACES, type GridStore, type Namespace, type RecordChange, type StoredRecord } from './grid-store.js';

const NAMESPACE_SET = new Set<string>(NAMESPACES);

/** One record as a line (with its newline). */
export function recordLine(ns: Namespace, key: string, r: StoredRecord): string {
  return `${ns}\t${r.partition}\t${r.version}\t${r.expiresAt}\t${r.deleted ? 1 : 0}\t${JSON.stringify(key)}\t${r.index === undefined ? '' : JSON.stringify(r.index)}\t${r.json}\t${r.origin ?? ''}\n`;
}

/** Where a partition's transfer stopped: the last record sent, by (namespace, key). */
export type TransferCursor = [ns: string, key: string];

/** Records in transfer order: by namespace, then key (plain string order, the same on every engine). */
function compareCursor(ns: string, key: string, c: TransferCursor): number {
  if (ns !== c[0]) return ns < c[0] ? -1 : 1;
  return key === c[1] ? 0 : key < c[1] ? -1 : 1;
}

/** A line's length in characters, close enough to budget a message (the numbers are at most 16 digits). */
function lineChars(key: string, r: StoredRecord): number {
  return r.json.length + key.length + (r.index?.length ?? 0) + 64;
}

/**
 * The record lines of `partition` that come after `after` in transfer order (all of them
 * without it), as many as fit in `budgetChars` and at least one. `next` is set when some are
 * left: the cursor to ask for the rest with. A partition that fits whole is sent as it is;
 * only one that does not is sorted, so successive slices neither skip nor repeat a record
 * however the store reorders its keys meanwhile. A record changed after its slice was sent
 * is not sent again (the replication of that change carries it), and one added before the
 * cursor is not sent at all: a slice is what the partition held when it was read.
 */
export function partitionSlice(store: GridStore, partition: number, budgetChars: number, after?: TransferCursor, view?: RecordView): { lines: string; next?: TransferCursor } {
  const { entries, total } = entriesAfter(store, partition, after, view);
  if (total <= budgetChars) return { lines: entries.map(([ns, key, r]) => recordLine(ns, key, r)).join('') };
  entries.sort(([nsA, keyA], [nsB, keyB]) => compareCursor(nsA, keyA, [nsB, keyB]));
  let lines = '';
  let taken = 0;
  for (const [ns, key, r] of entries) {
    if (taken > 0 && lines.length + lineChars(key, r) > budgetChars) break;
    lines += recordLine(ns, key, r);
    taken++;
  }
  const [ns, key] = entries[taken - 1]!;
  return taken < entries.length ? { lines, next: [ns, key] } : { lines };
}

/** The record lines of all of `partition` when they fit in `budgetChars`; undefined (nothing built) when not. */
export function wholePartition(store: GridStore, partition: number, budgetChars: number, view?: RecordView): string | undefined {
  const { entries, total } = entriesAfter(store, partition, undefined, view);
  return total <= budgetChars ? entries.map(([ns, key, r]) => recordLine(ns, key, r)).join('') : undefined;
}

/**
 * What a transfer sends of a record: the record itself, another version of it, or nothing
 * (undefined). The replicated executor sends what its writes in flight replaced, not what
 * they wrote (partition-transfer.ts `acknowledged`).
 */
export type RecordView = (ns: Namespace, key: string, record: StoredRecord) => StoredRecord | undefined;

function entriesAfter(store: GridStore, partition: number, after: TransferCursor | undefined, view?: RecordView): { entries: Array<[Namespace, string, StoredRecord]>; total: number } {
  const entries: Array<[Namespace, string, StoredRecord]> = [];
  let total = 0;
  store.eachRecord(partition, (ns, key, stored) => {
    if (after !== undefined && compareCursor(ns, key, after) <= 0) return;
    const record = view ? view(ns, key, stored) : stored;
    if (record === undefined) return;
    entries.push([ns, key, record]);
    total += lineChars(key, record);
  });
  return { entries, total };
}

/** A cursor from the wire, or undefined when `value` is not one. */
export function transferCursor(value: unknown): TransferCursor | undefined {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' ? [value[0], value[1]] : undefined;
}

/**
 * Parses one line (without its newline); undefined when it is not a well-formed record. The
 * value's JSON is checked only for its outer shape: it came from an engine of this cluster
 * (authenticated transport) or from a file whose checksum matched (grid-state-file.ts).
 */
export function parseRecordLine(line: string): RecordChange | undefined {
  const f = line.split('\t');
  if (f.length !== 8 && f.length !== 9) return undefined;
  const [ns, partition, version, expiresAt, deleted, key, index, json, origin] = f as [string, string, string, string, string, string, string, string, string | undefined];
  if (!NAMESPACE_SET.has(ns) || (deleted !== '0' && deleted !== '1') || json.length === 0) return undefined;
  const record: StoredRecord = { json, expiresAt: Number(expiresAt), version: Number(version), partition: Number(partition) };
  if (!Number.isSafeInteger(record.version) || !Number.isFinite(record.expiresAt) || !Number.isInteger(record.partition)) return undefined;
  if (deleted === '1') record.deleted = true;
  if (origin !== undefined && origin !== '') record.origin = origin;
  const k = jsonString(key);
  if (k === undefined) return undefined;
  if (index !== '') {
    const i = jsonString(index);
    if (i === undefined) return undefined;
    record.index = i;
  }
  return { ns: ns as Namespace, key: k, record };
}

/** A JSON string literal's value; undefined when `text` is not one. */
function jsonString(text: string): string | undefined {
  if (text.charCodeAt(0) !== 34 /* " */) return undefined;
  // Most keys hold nothing to unescape: skip the parser for them.
  if (text.indexOf('\\', 1) < 0 && text.indexOf('"', 1) === text.length - 1) return text.slice(1, -1);
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Parses a block of lines; counts the lines that are not records. */
export function parseRecordLines(text: string): { changes: RecordChange[]; damaged: number } {
  const changes: RecordChange[] = [];
  let damaged = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (end > start) {
      const change = parseRecordLine(text.slice(start, end));
      if (change) changes.push(change);
      else damaged++;
    }
    start = end + 1;
  }
  return { changes, damaged };
}
