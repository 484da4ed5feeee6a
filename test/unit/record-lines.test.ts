/**
 * Record lines (state/grid/record-lines.ts): a record read back from its line is the record
 * written, and a line that is not well formed is refused, whatever it holds. The parser reads
 * fields in place; the reference below splits the line into strings, as the format defines it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NAMESPACES, type Namespace, type RecordChange, type StoredRecord } from '../../src/state/grid/grid-store.js';
import { parseRecordLine, parseRecordLines, recordLine } from '../../src/state/grid/record-lines.js';

/** The format by its definition: nine (or eight) tab-separated fields. */
function reference(line: string): RecordChange | undefined {
  const f = line.split('\t');
  if (f.length !== 8 && f.length !== 9) return undefined;
  const [ns, partition, version, expiresAt, deleted, key, index, json, origin] = f as [string, string, string, string, string, string, string, string, string | undefined];
  if (!(NAMESPACES as readonly string[]).includes(ns) || (deleted !== '0' && deleted !== '1') || json.length === 0) return undefined;
  const record: StoredRecord = { json, expiresAt: Number(expiresAt), version: Number(version), partition: Number(partition) };
  if (!Number.isSafeInteger(record.version) || !Number.isFinite(record.expiresAt) || !Number.isInteger(record.partition)) return undefined;
  if (deleted === '1') record.deleted = true;
  if (origin !== undefined && origin !== '') record.origin = origin;
  const str = (text: string): string | undefined => {
    try {
      const v: unknown = JSON.parse(text);
      return text.startsWith('"') && typeof v === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  };
  const k = str(key);
  if (k === undefined) return undefined;
  if (index !== '') {
    const i = str(index);
    if (i === undefined) return undefined;
    record.index = i;
  }
  return { ns: ns as Namespace, key: k, record };
}

const text = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '9', '-', '"', '\\', ' ', '.', 'é', '\u{1f600}', 'u', '+', 'e'), maxLength: 12 });
const records = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  key: text,
  index: fc.option(text, { nil: undefined }),
  json: fc.oneof(fc.json({ maxDepth: 2 }), fc.constant('null')),
  partition: fc.integer({ min: -1, max: 270 }),
  version: fc.oneof(fc.maxSafeNat(), fc.integer({ min: 1_800_000_000_000 * 1024, max: 1_900_000_000_000 * 1024 })),
  expiresAt: fc.oneof(fc.integer({ min: 0, max: 4_000_000_000_000 }), fc.double({ min: 0, max: 1e15, noNaN: true })),
  deleted: fc.boolean(),
  origin: fc.option(fc.constantFrom('engine-1', 'n3', ''), { nil: undefined }),
});

type RecordFields = typeof records extends fc.Arbitrary<infer T> ? T : never;

function line(r: RecordFields): string {
  const record: StoredRecord = { json: r.json, expiresAt: r.expiresAt, version: r.version, partition: r.partition };
  if (r.deleted) record.deleted = true;
  if (r.index !== undefined) record.index = r.index;
  if (r.origin) record.origin = r.origin;
  return recordLine(r.ns, r.key, record).slice(0, -1);
}

describe('record lines', () => {
  it('read back every record written, as the format defines', () => {
    fc.assert(
      fc.property(records, (r) => {
        const l = line(r);
        const parsed = parseRecordLine(l);
        assert.deepEqual(parsed, reference(l));
        assert.ok(parsed, l);
        assert.equal(parsed.key, r.key);
        assert.equal(parsed.record.version, r.version);
        assert.equal(parsed.record.expiresAt, r.expiresAt);
        assert.equal(parsed.record.index, r.index);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuse what the format refuses and read what it reads, for lines changed anywhere', () => {
    const edit = fc.record({ at: fc.nat(), cut: fc.nat({ max: 3 }), put: fc.constantFrom('', '\t', '"', '\\', '-', '1', 'x', 'e5', ' ', '\t\t', '0x1') });
    fc.assert(
      fc.property(records, edit, (r, e) => {
        const l = line(r);
        const at = e.at % (l.length + 1);
        const changed = l.slice(0, at) + e.put + l.slice(at + e.cut);
        assert.deepEqual(parseRecordLine(changed), reference(changed), JSON.stringify(changed));
      }),
      { numRuns: 5000 },
    );
  });

  it('parse a block of lines in place: every record, and a count of the lines that are not', () => {
    const lines = ['session\t7\t100\t200\t0\t"a"\t"alice"\t[1]\tengine-1', 'not a record', 'state\t-1\t5\t6\t1\t"b"\t\tnull'];
    const { changes, damaged } = parseRecordLines(`${lines.join('\n')}\n`);
    assert.equal(damaged, 1);
    assert.deepEqual(changes, [reference(lines[0]!), reference(lines[2]!)]);
  });
});
