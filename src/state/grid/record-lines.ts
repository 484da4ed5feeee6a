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

/** Tab positions of the line being parsed (a record line has 7 or 8). */
const tabs = new Int32Array(9);

/**
 * Parses one line (without its newline): `text` from `start` to `end`, all of it by default;
 * undefined when it is not a well-formed record. The value's JSON is checked only for its
 * outer shape: it came from an engine of this cluster (authenticated transport) or from a file
 * whose checksum matched (grid-state-file.ts).
 *
 * Fields are found by their tabs and read in place (numbers digit by digit, strings sliced
 * once), not split into an array of strings first: a joining engine parses a million lines,
 * and the strings it would drop at once cost as much to collect as to make.
 */
export function parseRecordLine(text: string, start = 0, end = text.length): RecordChange | undefined {
  let count = 0;
  for (let i = text.indexOf('\t', start); i >= 0 && i < end; i = text.indexOf('\t', i + 1)) {
    if (count === 8) return undefined;
    tabs[count++] = i;
  }
  if (count !== 7 && count !== 8) return undefined;
  const ns = namespaceAt(text, start, tabs[0]!);
  const deletedAt = tabs[3]! + 1;
  const deleted = tabs[4] === deletedAt + 1 ? text.charCodeAt(deletedAt) : -1;
  const jsonStart = tabs[6]! + 1;
  const jsonEnd = count === 8 ? tabs[7]! : end;
  if (ns === undefined || (deleted !== 48 && deleted !== 49) /* 0 or 1 */ || jsonEnd === jsonStart) return undefined;
  const record: StoredRecord = {
    json: text.slice(jsonStart, jsonEnd),
    expiresAt: numberField(text, tabs[2]! + 1, tabs[3]!),
    version: numberField(text, tabs[1]! + 1, tabs[2]!),
    partition: numberField(text, tabs[0]! + 1, tabs[1]!),
  };
  if (!Number.isSafeInteger(record.version) || !Number.isFinite(record.expiresAt) || !Number.isInteger(record.partition)) return undefined;
  if (deleted === 49) record.deleted = true;
  if (count === 8 && tabs[7]! + 1 < end) record.origin = text.slice(tabs[7]! + 1, end);
  const key = jsonString(text, tabs[4]! + 1, tabs[5]!);
  if (key === undefined) return undefined;
  if (tabs[6]! > tabs[5]! + 1) {
    const index = jsonString(text, tabs[5]! + 1, tabs[6]!);
    if (index === undefined) return undefined;
    record.index = index;
  }
  return { ns, key, record };
}

/** The namespace named from `start` to `end`, as the constant (no string made per line). */
function namespaceAt(text: string, start: number, end: number): Namespace | undefined {
  for (const ns of NAMESPACES) if (end - start === ns.length && text.startsWith(ns, start)) return ns;
  return undefined;
}

/**
 * The number written from `start` to `end`, as Number() reads it: plain digits (with a minus
 * sign), as every record line holds, are read in place; anything else goes through Number().
 */
function numberField(text: string, start: number, end: number): number {
  let i = start;
  const negative = text.charCodeAt(i) === 45; /* - */
  if (negative) i++;
  if (i === end || end - i > 16) return Number(text.slice(start, end));
  let value = 0;
  for (; i < end; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return Number(text.slice(start, end));
    value = value * 10 + digit;
  }
  // Past 2^53 the sum above may have rounded where Number() would round otherwise.
  if (value > Number.MAX_SAFE_INTEGER) return Number(text.slice(start, end));
  return negative ? -value : value;
}

/** The JSON string literal from `start` to `end`, its value; undefined when it is not one. */
function jsonString(text: string, start: number, end: number): string | undefined {
  if (text.charCodeAt(start) !== 34 /* " */) return undefined;
  // Most keys hold nothing to unescape: skip the parser for them. (Looked for between start
  // and end only: indexOf would search the rest of a transfer's text for a backslash.)
  let plain = end - start >= 2;
  for (let i = start + 1; plain && i < end - 1; i++) {
    const c = text.charCodeAt(i);
    if (c === 92 /* \\ */ || c === 34 /* " */) plain = false;
  }
  if (plain && text.charCodeAt(end - 1) === 34) return text.slice(start + 1, end - 1);
  try {
    const v: unknown = JSON.parse(text.slice(start, end));
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
      const change = parseRecordLine(text, start, end);
      if (change) changes.push(change);
      else damaged++;
    }
    start = end + 1;
  }
  return { changes, damaged };
}
