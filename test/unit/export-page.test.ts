/** consistentExportPage: the documents and audit records of one config.export answer agree. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { consistentExportPage } from '../../src/console/export-page.js';
import type { AuditRecord, ConfigDocument } from '../../src/repository/repository.js';

const doc = (version: number): ConfigDocument => ({ version, section: 'runtime', epoch: 0, content: {}, hash: 'h', createdAt: 0, author: 'a', node: 'console-1' });
let nextId = 0;
const saved = (version: number): AuditRecord => ({ id: ++nextId, at: 0, user: 'a', node: 'console-1', action: 'config.save', section: 'runtime', versionBefore: version - 1, versionAfter: version, summary: 's' });
const login = (): AuditRecord => ({ id: ++nextId, at: 0, user: 'a', node: 'console-1', action: 'admin.login', section: null, versionBefore: null, versionAfter: null, summary: 'login' });
const versions = (page: { documents: ConfigDocument[] }): number[] => page.documents.map((d) => d.version);
const savedVersions = (page: { audit: AuditRecord[] }): number[] => page.audit.filter((r) => r.action === 'config.save').map((r) => r.versionAfter!);

describe('consistentExportPage', () => {
  it('holds back the record of a save that committed between the two reads (its document comes next time), and the records after it', () => {
    const page = consistentExportPage([doc(4)], [saved(4), login(), saved(5), login()], 3, 500, 5);
    assert.deepEqual(versions(page), [4]);
    assert.deepEqual(savedVersions(page), [4]);
    assert.equal(page.audit.length, 2, 'the audit stays a prefix: nothing after the held-back record');
    const none = consistentExportPage([], [saved(4)], 3, 500, 4);
    assert.deepEqual(none, { documents: [], audit: [] });
  });

  it('leaves a page that agrees as it is, and a save record above the head (carried over from an older console) in place', () => {
    const documents = [doc(4), doc(5)];
    const audit = [login(), saved(4), saved(5), login()];
    assert.deepEqual(consistentExportPage(documents, audit, 3, 500, 5), { documents, audit });
    const stale = [saved(9), login()];
    assert.deepEqual(consistentExportPage([], stale, 8, 500, 8), { documents: [], audit: stale }, 'never held back for ever');
  });

  it('after a full page of audit records, hands out only the documents whose save records it holds', () => {
    const audit = [login(), saved(4), login()];
    const page = consistentExportPage([doc(4), doc(5), doc(6)], audit, 3, 3, 6);
    assert.deepEqual(versions(page), [4]);
    assert.deepEqual(page.audit, audit);
    assert.deepEqual(versions(consistentExportPage([doc(4)], [login(), login()], 3, 2, 4)), [], 'a full page of other records: documents wait a turn');
  });

  it('pulled answer after answer, a replica holds the save record of exactly the versions it holds, and reaches the console\'s history', () => {
    // A console's history of saves and other records; the replica pulls with small pages while
    // saves keep committing between the two reads of each answer.
    fc.assert(fc.property(
      fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 7 }),
      fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 40 }),
      (kinds, limit, racing) => {
        nextId = 0;
        const history: AuditRecord[] = [];
        let head = 0;
        const commit = (isSave: boolean) => (isSave ? history.push(saved(++head)) : history.push(login()));
        const pending = [...kinds];
        const heldVersions: number[] = [];
        const heldRecords: AuditRecord[] = [];
        for (let round = 0; round < 500; round++) {
          const sinceVersion = heldVersions.at(-1) ?? 0;
          const sinceId = heldRecords.at(-1)?.id ?? 0;
          const documents = Array.from({ length: Math.max(0, Math.min(limit, head - sinceVersion)) }, (_, i) => doc(sinceVersion + 1 + i));
          // Saves committing between the documents read and the audit read.
          for (let i = racing[round] ?? 0; i > 0 && pending.length > 0; i--) commit(pending.shift()!);
          const audit = history.filter((r) => r.id > sinceId).slice(0, limit);
          const page = consistentExportPage(documents, audit, sinceVersion, limit, head);
          heldVersions.push(...versions(page));
          heldRecords.push(...page.audit);
          const savesHeld = heldRecords.filter((r) => r.action === 'config.save').map((r) => r.versionAfter);
          assert.deepEqual(savesHeld, heldVersions, 'the save records held are those of the versions held');
          if (pending.length > 0 && (racing[round] ?? 0) === 0) commit(pending.shift()!);
          if (pending.length === 0 && heldRecords.length === history.length && heldVersions.length === head) return;
        }
        assert.fail(`the replica did not reach the console's history: ${heldVersions.length}/${head} versions, ${heldRecords.length}/${history.length} records`);
      },
    ), { numRuns: 300 });
  });
});
