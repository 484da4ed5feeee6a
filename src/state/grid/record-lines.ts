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
 */
import { NAMESPACES, type GridStore, type Namespace, type RecordChange, type StoredRecord } from './grid-store.js';

const NAMESPACE_SET = new Set<string>(NAMESPACES);

/** One record as a line (with its newline). */
export function recordLine(ns: Namespace, key: string, r: StoredRecord): string {
  return `${ns}\t${r.partition}\t${r.version}\t${r.expiresAt}\t${r.deleted ? 1 : 0}\t${JSON.stringify(key)}\t${r.index === undefined ? '' : JSON.stringify(r.index)}\t${r.json}\t${r.origin ?? ''}\n`;
}

/** Every unexpired record `store` holds of `partition`, a line each. */
export function partitionLines(store: GridStore, partition: number): string[] {
  const lines: string[] = [];
  store.eachRecord(partition, (ns, key, record) => lines.push(recordLine(ns, key, record)));
  return lines;
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
