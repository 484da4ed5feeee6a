/**
 * What one `config.export` answer hands a replica: the documents and the audit records after
 * the ones it holds, cut so that the two tell the same story. The console reads them with two
 * queries, each a page of at most EXPORT_BATCH, and a save can commit between the two reads; so
 * a page of audit records can hold the record of a save whose document the page of documents
 * does not (read just before it), and a full page of documents can run ahead of a full page of
 * audit records.
 *
 * Why it matters: when that replica is promoted, and the old console comes back and re-syncs
 * from the fork point (console-role.ts), the fork of the audit records is found apart from the
 * fork of the versions. A replica holding the record of a save it never held the version of
 * kept that record as a plain `config.save` of a version that was in fact dropped, and the
 * old console then handed over one record fewer as `config.discarded` (a full test run caught
 * it once: 248 records instead of 249).
 *
 * Invariant kept, answer after answer: a replica holds the `config.save` record of exactly the
 * versions it holds. Every answer still moves the replica on (its audit page is cut only at a
 * save whose document the console holds, which a later page of documents brings; its documents
 * only when its audit page was full, so the next page of records follows), so a replica never
 * stops short of the console's history.
 */
import type { AuditRecord, ConfigDocument } from '../repository/repository.js';

export interface ExportPage {
  documents: ConfigDocument[];
  audit: AuditRecord[];
}

/**
 * The pages read cut to agree (pure): `documents` after `sinceVersion` and `audit` after the
 * replica's newest record, as read (documents first), `auditLimit` the most records the audit
 * read could return, `head` the console's head version read after both.
 *
 * - The audit page ends before the first `config.save` of a version beyond the documents
 *   handed out that the console holds (saved between the two reads, or beyond a full page of
 *   documents). A save record of a version above the head is left alone: it cannot be the
 *   race, and holding it back would hold back every record after it for ever (a history
 *   carried over from an older console can hold one).
 * - When the audit page was full and nothing was cut, the documents end at the last version
 *   whose save record it holds (the next records come with the next answer).
 */
export function consistentExportPage(documents: ConfigDocument[], audit: AuditRecord[], sinceVersion: number, auditLimit: number, head: number): ExportPage {
  const lastDocument = documents.at(-1)?.version ?? sinceVersion;
  const cut = audit.findIndex((r) => {
    const saved = savedVersion(r);
    return saved !== undefined && saved > lastDocument && saved <= head;
  });
  if (cut >= 0) return { documents, audit: audit.slice(0, cut) };
  if (audit.length < auditLimit) return { documents, audit };
  const lastSaved = Math.max(sinceVersion, ...audit.map((r) => savedVersion(r) ?? 0));
  return { documents: documents.filter((d) => d.version <= lastSaved), audit };
}

/** The version a `config.save` record made, or undefined for any other record. */
function savedVersion(r: AuditRecord): number | undefined {
  return r.action === 'config.save' && typeof r.versionAfter === 'number' ? r.versionAfter : undefined;
}
