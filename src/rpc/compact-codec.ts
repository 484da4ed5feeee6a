/**
 * The compact (MessagePack) form of RPC messages (rpc.ts), for the methods whose tables mark
 * them `compact` — the replication hot path — sent only to peers whose connection agreed on
 * wire protocol 3 or later (transport/handshake.ts).
 *
 * Why: a replicated write is a handful of small messages, each carrying a record whose value
 * is itself JSON text. As JSON, every quote of that text is escaped on the way out and parsed
 * again on the way in; MessagePack carries the text as length-prefixed bytes, and encodes and
 * decodes the message around it with less work (docs/benchmarks.md has the measurements).
 *
 * Invariants:
 * - A message means the same in both forms: properties whose value is undefined are left out
 *   and undefined in arrays becomes null, as JSON.stringify does. Compact methods carry plain
 *   data (strings, numbers, booleans, null, arrays, objects); nothing relies on `toJSON`. One
 *   difference: a key `__proto__` arrives as `__proto_` (msgpackr will not set a prototype from
 *   the wire); none reaches the grid, whose HTTP front refuses such keys in request bodies.
 * - Each message is encoded when it is sent, so a body changed afterwards is not what leaves,
 *   as with JSON; a batch is a MessagePack array whose elements are those encodings, one after
 *   the other (COMPACT_MARK, the array header, the messages).
 * - Decoding never throws past `decodeCompactBatch`'s caller's catch: anything that is not an
 *   array of messages is malformed (dropped and counted by rpc.ts).
 * - A batch encoded for a protocol-3 connection that is lost before the end of its turn leaves
 *   on the next connection to that address; were the peer replaced by a protocol-2 build in
 *   that moment, it would drop the batch as malformed and the calls would time out, as calls
 *   lost with a connection do.
 */
import { Packr, Unpackr, type Options } from 'msgpackr';

/** The first byte of a compact batch (rpc.ts: 0x01 raw text, 0x02 a JSON batch). */
export const COMPACT_MARK = 0x03;
/** The first wire-protocol version whose nodes read compact batches. */
export const COMPACT_PROTOCOL = 3;
/** The bytes before the messages: the mark and a MessagePack array-32 header. */
export const COMPACT_HEADER_BYTES = 6;

// Plain MessagePack maps (no msgpackr records: those need both ends to share structure
// definitions across messages, which separate connections and restarts would break).
// `skipValues` (leave out properties with these values, as JSON.stringify does for undefined)
// is in msgpackr's documentation and code but not in its type declarations.
const packOptions: Options & { skipValues: unknown[] } = { useRecords: false, skipValues: [undefined], encodeUndefinedAsNil: true };
const packr = new Packr(packOptions);
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** One message, encoded now. */
export function encodeCompact(message: unknown): Uint8Array {
  return packr.pack(message);
}

/** The header of a batch of `count` encoded messages. */
export function compactBatchHeader(count: number): Uint8Array {
  const header = Buffer.allocUnsafe(COMPACT_HEADER_BYTES);
  header[0] = COMPACT_MARK;
  header[1] = 0xdd; // array 32
  header.writeUInt32BE(count, 2);
  return header;
}

/** The messages of a compact batch (`bytes` starts with COMPACT_MARK); throws when it is not one. */
export function decodeCompactBatch(bytes: Uint8Array): unknown[] {
  const decoded: unknown = unpackr.unpack(bytes.subarray(1));
  if (!Array.isArray(decoded)) throw new Error('a compact batch is an array');
  return decoded;
}
