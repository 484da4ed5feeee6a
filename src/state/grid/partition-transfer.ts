/**
 * Moving partitions between two engines: fingerprints (`grid.digests`), pulls (`grid.pull`)
 * and pushes (`grid.mergeLines`), as record lines (record-lines.ts) in bulk messages (a pull
 * asks for the next while it merges one, a push sends one at a time: back-pressure), a
 * partition larger than a message in slices.
 *
 * Invariants:
 * - A transfer sends, of a record whose partition has a change being replicated, the record
 *   that change replaced (`acknowledged`): a change not yet acknowledged may still be undone.
 * - Merging is idempotent and the newer version wins, so a transfer left half-way is safe;
 *   a partition counts as moved only once its last slice was merged.
 * - Nothing is sent where the fingerprints are equal.
 */
import { CohortError } from '../../core/errors.js';
import { RawText } from '../../rpc/rpc.js';
import { parseRecordLines, partitionSlice, transferCursor, wholePartition, type RecordView, type TransferCursor } from './record-lines.js';
import type { ReplicaState } from './replica-state.js';

/**
 * Largest bulk message (record lines) a transfer builds: a partition larger than this moves
 * in several messages (chunks). In characters: at most 3 bytes of UTF-8 each, so a message
 * stays under the transport's 16 MiB frame limit. A chunk holds at least one record, so a
 * single record of more than about 16 MiB could not move at all; the size caps of the
 * runtime API keep every value far below that.
 */
const BULK_MESSAGE_CHARS = 4 << 20;

export class PartitionTransfer {
  constructor(private readonly s: ReplicaState) {
    s.rpc.handle('grid.mergeLines', (body) => this.mergeLines(body.text));
    s.rpc.handle('grid.digests', (body) => body.partitions.map((p) => this.s.store.digest(p)));
    // The answer's first line lists the partitions it holds whole (as many as fit in one
    // message). A partition too large for one message comes in slices: the first line is then
    // `{"done": [...], "partial": {"partition", "after"}}`, and the next request carries
    // `after` to continue it (record-lines.ts `partitionSlice`). Engines that predate slices
    // send no `after` and read only the list, which is all they get for partitions that fit.
    s.rpc.handle('grid.pull', (body) => {
      const batch = this.exportBatch(body.partitions, transferCursor(body.after));
      const header = batch.partial ? { done: batch.done, partial: batch.partial } : batch.done;
      return new RawText([`${JSON.stringify(header)}\n`, ...batch.lines]);
    });
  }

  /**
   * Pulls partitions from one engine, a bulk message at a time, merging each as it comes:
   * whole partitions, or slices of one too large for a message. The next message is asked for
   * before this one is merged, so the other engine builds it meanwhile (at most two in flight:
   * back-pressure). Merging is idempotent and the newer version wins, so a partition left
   * half-way is safe; it counts as synchronised only when this resolves (its last slice
   * arrived and was merged).
   */
  async pullFrom(address: string, partitions: number[]): Promise<void> {
    let left = partitions;
    let after: TransferCursor | undefined;
    const ask = (): Promise<unknown> | undefined => (left.length > 0 && !this.s.closed ? this.pull(address, left, after) : undefined);
    let next = ask();
    while (next) {
      const answer = await next;
      if (!(answer instanceof RawText)) throw new CohortError('STATE_UNAVAILABLE', `${address} answered grid.pull without record lines`);
      const newline = answer.text.indexOf('\n');
      const progress = pullProgress(JSON.parse(answer.text.slice(0, newline)) as unknown);
      if (!progress || (progress.done.length === 0 && !progress.partial)) throw new CohortError('STATE_UNAVAILABLE', `${address} sent none of the partitions asked`);
      ({ left, after } = remaining(left, progress));
      next = ask();
      // Its failure is seen at the next turn of this loop; should the merge below throw, the
      // pull asked for ahead is not left with an unhandled rejection.
      next?.catch(() => undefined);
      this.mergeLines(answer.text.slice(newline + 1));
    }
  }

  /** Asks the engine at `address` for the next bulk message of `partitions` (from `after` in the first). */
  private pull(address: string, partitions: number[], after: TransferCursor | undefined): Promise<unknown> {
    const body = after === undefined ? { partitions } : { partitions, after };
    return this.s.rpc.call(address, 'grid.pull', body, { channel: 'bulk', timeoutMs: this.s.bulkTimeoutMs });
  }

  /**
   * Sends `partitions` to the engine at `address`, those whose fingerprint there differs from
   * ours: a bulk message at a time, each waiting for the previous to be merged there; a
   * partition too large for one message goes in slices (the receiver merges each as it comes).
   */
  async pushWhereDifferent(address: string, partitions: number[]): Promise<void> {
    const theirs = await this.s.rpc.call(address, 'grid.digests', { partitions });
    let left = partitions.filter((p, i) => theirs[i] !== this.s.store.digest(p));
    let after: TransferCursor | undefined;
    while (left.length > 0 && !this.s.closed) {
      const batch = this.exportBatch(left, after);
      await this.s.rpc.call(address, 'grid.mergeLines', new RawText(batch.lines), { channel: 'bulk', timeoutMs: this.s.bulkTimeoutMs });
      ({ left, after } = remaining(left, batch));
    }
  }

  /** Merges record lines; resolves with how many were newer than ours. */
  mergeLines(text: string): number {
    const { changes, damaged } = parseRecordLines(text);
    if (damaged > 0) this.s.logger.warn({ damaged }, 'record lines from another engine were not records; skipped');
    let merged = 0;
    for (const c of changes) if (this.s.store.merge(c)) merged++;
    return merged;
  }

  /**
   * What a transfer (a pull answered, a push) sends of a record: while a change of its
   * partition is being replicated, the record that change replaced (nothing, where it added
   * one). A change not yet acknowledged may still be undone, and its revert removes the
   * change wherever it is, restoring what this primary held before it: an engine that took
   * the change in a transfer, over a record of its own that the change's version beat,
   * would lose that record to the revert (the simulator's lifecycle workload, seed 93: a
   * replay id accepted, pulled over by another primary's write in flight, reverted away, and
   * accepted again). The change reaches the others with its replication, or its partition's
   * next transfer once acknowledged.
   */
  private acknowledged(partition: number): RecordView | undefined {
    const replaced = this.s.replaced.get(partition);
    if (replaced === undefined) return undefined;
    return (ns, key, record) => {
      const k = `${ns} ${key}`;
      return replaced.has(k) ? replaced.get(k) : record;
    };
  }

  /**
   * Record lines for `partitions`, in order, as many as fit in BULK_MESSAGE_CHARS: whole
   * partitions, or, when the first does not fit, a slice of it (`partial`: where to continue).
   * `after` continues the first partition where an earlier slice stopped.
   */
  private exportBatch(partitions: number[], after?: TransferCursor): { done: number[]; lines: string[]; partial?: { partition: number; after: TransferCursor } } {
    const done: number[] = [];
    // One piece per partition (or slice), sent one after another (rpc.ts RawText).
    const lines: string[] = [];
    let chars = 0;
    for (const [i, p] of partitions.entries()) {
      if (i === 0) {
        // The first partition: whole if it fits, else a slice (then nothing more this message).
        const slice = partitionSlice(this.s.store, p, BULK_MESSAGE_CHARS, after, this.acknowledged(p));
        if (slice.next !== undefined) return { done, lines: [slice.lines], partial: { partition: p, after: slice.next } };
        lines.push(slice.lines);
        chars = slice.lines.length;
      } else {
        // The others only whole, in what is left of the message; a later message starts the rest.
        const whole = wholePartition(this.s.store, p, BULK_MESSAGE_CHARS - chars, this.acknowledged(p));
        if (whole === undefined) break;
        lines.push(whole);
        chars += whole.length;
      }
      done.push(p);
    }
    return { done, lines };
  }
}

/** What one bulk message of a transfer carried: partitions whole, and a slice of one. */
interface TransferProgress {
  done: number[];
  partial?: { partition: number; after: TransferCursor };
}

/** The first line of a `grid.pull` answer: a list of partitions, or `{done, partial}`; undefined when neither. */
function pullProgress(header: unknown): TransferProgress | undefined {
  const isList = (v: unknown): v is number[] => Array.isArray(v) && v.every((p) => Number.isInteger(p));
  if (isList(header)) return { done: header };
  if (typeof header !== 'object' || header === null) return undefined;
  const { done, partial } = header as { done?: unknown; partial?: { partition?: unknown; after?: unknown } };
  if (!isList(done)) return undefined;
  if (partial === undefined) return { done };
  const after = transferCursor(partial?.after);
  if (!Number.isInteger(partial?.partition) || after === undefined) return undefined;
  return { done, partial: { partition: partial.partition as number, after } };
}

/** What a transfer still has to move after `progress`: the sliced partition first, with its cursor. */
function remaining(left: number[], progress: TransferProgress): { left: number[]; after?: TransferCursor } {
  const rest = left.filter((p) => !progress.done.includes(p) && p !== progress.partial?.partition);
  if (!progress.partial) return { left: rest };
  return { left: [progress.partial.partition, ...rest], after: progress.partial.after };
}
