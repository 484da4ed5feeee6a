/**
 * The grid's protocol table: every RPC method engines ask of each other, with its request
 * and answer types and the schema a request must fit (rpc/protocol.ts). Handlers and
 * callers use it through `ProtocolRpc<GridMethods>`.
 *
 * Append-only (rpc/protocol.ts): `since` is the wire-protocol version in which the method
 * appeared (transport/handshake.ts; this build speaks 2 and 3, so a node predating a method
 * of version 2 cannot join). A node asked a method it predates answers RPC_NO_HANDLER. The
 * replication hot path (execute, replicate, merge, read) is `compact`: MessagePack between
 * nodes of protocol 3.
 *
 *   method            since  what
 *   grid.execute      1      run an operation as the partition's primary
 *   grid.replicate    1      a primary's change, to a backup (refused unless from the primary)
 *   grid.merge        1      records to merge (reverts of undone writes, revocations)
 *   grid.read         1      a read a backup answers when the primary is unreachable
 *   grid.pull         1      record lines of partitions (bulk), sliced when large
 *   grid.mergeLines   1      record lines to merge (bulk pushes)
 *   grid.digests      1      fingerprints of partitions
 *   grid.serving      1      the engines this one places partitions on
 *   grid.sweep        1      sweep expired records now (cohort-node's admin sweep)
 *   grid.revoked      2      which of these ids this engine holds as revoked
 *   grid.witness      2      hold a replay id for a primary (replay-witnesses.ts), or refuse it as seen
 *   grid.unwitness    2      forget a replay id held for a primary whose insert failed
 */
import { anything, anyObject, int, isTrue, listOf, literal, num, object, rawText, str, type BodySchema } from '../../rpc/body-schema.js';
import { defineProtocol, ProtocolRpc } from '../../rpc/protocol.js';
import type { RawText, Rpc } from '../../rpc/rpc.js';
import type { Logger } from '../../core/logger.js';
import { NAMESPACES, type RecordChange } from './grid-store.js';
import { operationSchema } from './operation-schema.js';
import type { Operation } from './operations.js';

/** Most ids one `grid.revoked` request asks about (a longer list goes in several). */
export const REVOKED_QUERY_MAX = 1000;

/** A backup's copy of a primary's change. */
export interface ReplicateBody {
  partition: number;
  changes: RecordChange[];
  /** Keys that must not exist on the backup (replay prevention). */
  absent?: Array<{ ns: 'replay'; key: string }>;
}

/** `grid.pull`: `after` continues the first partition where the last slice stopped (record-lines.ts `transferCursor`: ignored when it is not one). */
export interface PullBody {
  partitions: number[];
  after?: unknown;
}

export type GridMethods = {
  /** The answer is the operation's result (operations.ts `OperationResults` of its type). */
  'grid.execute': { request: { partition: number; op: Operation }; answer: unknown };
  'grid.replicate': { request: ReplicateBody; answer: boolean };
  'grid.merge': { request: { changes: RecordChange[] }; answer: boolean };
  'grid.read': { request: { partition: number; op: Operation }; answer: unknown };
  /** Answer: a first line (JSON: the partitions sent whole, or `{done, partial}`), then record lines. */
  'grid.pull': { request: PullBody; answer: RawText };
  /** Answer: how many records were newer than the receiver's. */
  'grid.mergeLines': { request: RawText; answer: number };
  /** Answer: one fingerprint per partition asked, in order. */
  'grid.digests': { request: { partitions: number[] }; answer: string[] };
  'grid.serving': { request: Record<string, unknown>; answer: string[] };
  /** Answer: how many expired records were swept. */
  'grid.sweep': { request: unknown; answer: number };
  'grid.revoked': { request: { ids: string[] }; answer: string[] };
  'grid.witness': { request: { id: string; expiresAt: number }; answer: boolean };
  'grid.unwitness': { request: { id: string }; answer: boolean };
};

const partition = int;
const partitions = listOf(int);

const storedRecord = object({ json: str, expiresAt: num, version: int, partition: int }, { deleted: isTrue, index: str, origin: str });

const recordChange: BodySchema<RecordChange> = object({ ns: literal(...NAMESPACES), key: str, record: storedRecord }, { ifVersion: int, ifOrigin: str });

const executeBody = object({ partition, op: operationSchema });

export const GRID_PROTOCOL = defineProtocol<GridMethods>('grid', {
  'grid.execute': { since: 1, compact: true, request: executeBody },
  'grid.replicate': { since: 1, compact: true, request: object({ partition, changes: listOf(recordChange) }, { absent: listOf(object({ ns: literal('replay'), key: str })) }) },
  'grid.merge': { since: 1, compact: true, request: object({ changes: listOf(recordChange) }) },
  'grid.read': { since: 1, compact: true, request: executeBody },
  'grid.pull': { since: 1, request: object({ partitions }, { after: anything }) },
  'grid.mergeLines': { since: 1, request: rawText },
  'grid.digests': { since: 1, request: object({ partitions }) },
  'grid.serving': { since: 1, request: anyObject },
  'grid.sweep': { since: 1, request: anything },
  'grid.revoked': { since: 2, request: object({ ids: listOf(str, REVOKED_QUERY_MAX) }) },
  'grid.witness': { since: 2, request: object({ id: str, expiresAt: num }) },
  'grid.unwitness': { since: 2, request: object({ id: str }) },
});

export type GridRpc = ProtocolRpc<GridMethods>;

/** The node's Rpc seen through the grid's table. */
export function gridRpc(rpc: Rpc, logger?: Logger): GridRpc {
  return new ProtocolRpc(rpc, GRID_PROTOCOL, logger);
}
