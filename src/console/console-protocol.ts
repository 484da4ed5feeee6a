/**
 * The protocol between the active console and its replica (rpc/protocol.ts): the replica's
 * pulls of the history (`config.export`), of the console's history pages when the two forked
 * (`config.history`), of admin users and tokens, the audit records a re-syncing node hands
 * over (`config.discarded`), and the authority challenge consoles put to each other
 * (`console.prove`). Every replica request carries its proof of admission (role-proofs.ts;
 * checked by the handler, so a missing proof is CONSOLE_ROLE_UNPROVEN, not a bad request),
 * and every answer is signed over the proof's nonce. What engines use too is in
 * policy/config-protocol.ts.
 *
 * Append-only (rpc/protocol.ts); `since` is the wire-protocol version in which the method
 * appeared (transport/handshake.ts):
 *
 *   method             since  what
 *   config.export      1      documents and audit records after the asker's (or `diverged`)
 *   config.users       1      the admin users
 *   config.history     1      a page of versions or audit records, newest first
 *   config.discarded   1      audit records a re-syncing node drops, for the console's trail
 *   config.tokens      2      the admin tokens (hashes only, revoked ones included)
 *   console.prove      2      sign a nonce with the console authority
 */
import type { Logger } from '../core/logger.js';
import type { AdminToken, AdminUser, AuditRecord, ConfigDocument } from '../repository/repository.js';
import { anyObject, asType, listOf, literal, num, object, shortStr, str } from '../rpc/body-schema.js';
import { defineProtocol, ProtocolRpc } from '../rpc/protocol.js';
import type { Rpc } from '../rpc/rpc.js';
import type { AuthorityProof } from '../policy/console-authority.js';
import type { ReplicaProof } from './role-proofs.js';

export interface ExportRequest {
  /** The replica's proof (role-proofs.ts); the answer is signed over its nonce. */
  proof?: ReplicaProof;
  sinceVersion: number;
  sinceAuditId: number;
  /** The asker's document of version `sinceVersion`: the console checks it holds the same one. */
  sinceDocument?: { epoch: number; hash: string };
  /** The asker's audit record `sinceAuditId`, checked the same way. */
  sinceAudit?: AuditRecord;
}

export interface ExportAnswer {
  epoch: number;
  version: number;
  documents: ConfigDocument[];
  audit: AuditRecord[];
  /** The asker's newest document or audit record is not the console's: re-sync from the fork point. */
  diverged?: boolean;
  /** The key that opens the documents' secrets, sealed for the asker (role-proofs.ts sealKeyForReplica). */
  secretsKey?: string;
  /** The console's signature of everything else, over the request's nonce. */
  proof?: unknown;
}

/** `config.history`: a page of the console's versions or audit records, newest first, below `before`. */
export interface HistoryRequest {
  proof?: ReplicaProof;
  what: 'versions' | 'audit';
  before?: number;
  limit?: number;
}

/**
 * The answer to `config.history`, signed like an export: a re-sync drops what the replica holds
 * after the fork point it finds in these pages, so a page from a node that only claims the
 * console role must not be able to move that point.
 */
export interface HistoryAnswer<T> {
  items: T[];
  proof?: unknown;
}

/** `config.discarded`: the audit records a re-syncing node drops, for the console's trail. */
export interface DiscardedRequest {
  proof?: ReplicaProof;
  records: AuditRecord[];
}

/** `config.users` and `config.tokens`: the proof is all a request carries. */
export interface ProvenRequest {
  proof?: ReplicaProof;
}

export type ConsoleMethods = {
  'config.export': { request: ExportRequest; answer: ExportAnswer };
  'config.users': { request: ProvenRequest; answer: { items: AdminUser[]; proof?: unknown } };
  'config.tokens': { request: ProvenRequest; answer: { items: AdminToken[]; proof?: unknown } };
  'config.history': { request: HistoryRequest; answer: HistoryAnswer<unknown> };
  /** Answer: how many records were appended (those not handed over before). */
  'config.discarded': { request: DiscardedRequest; answer: number };
  /** Answer: the authority's signature of the nonce and the node's id (policy/console-authority.ts signStatement). */
  'console.prove': { request: { nonce: string }; answer: AuthorityProof };
};

/** A proof's shape; whether it proves anything is the proof checker's to say (role-proofs.ts). */
const proof = object({ key: str, signature: str, at: num, nonce: str });
/** Audit records are compared field by field (config-publisher.ts `sameAuditRecord`) and stored as given. */
const auditRecord = asType<AuditRecord>(anyObject);

export const CONSOLE_PROTOCOL = defineProtocol<ConsoleMethods>('console', {
  'config.export': { since: 1, request: object({ sinceVersion: num, sinceAuditId: num }, { proof, sinceDocument: object({ epoch: num, hash: str }), sinceAudit: auditRecord }) },
  'config.users': { since: 1, request: object({}, { proof }) },
  'config.tokens': { since: 2, request: object({}, { proof }) },
  'config.history': { since: 1, request: object({ what: literal('versions', 'audit') }, { proof, before: num, limit: num }) },
  'config.discarded': { since: 1, request: object({ records: listOf(auditRecord) }, { proof }) },
  'console.prove': { since: 2, request: object({ nonce: shortStr(64) }) },
});

export type ConsoleRpc = ProtocolRpc<ConsoleMethods>;

/** The node's Rpc seen through the console protocol's table. */
export function consoleRpc(rpc: Rpc, logger?: Logger): ConsoleRpc {
  return new ProtocolRpc(rpc, CONSOLE_PROTOCOL, logger);
}
