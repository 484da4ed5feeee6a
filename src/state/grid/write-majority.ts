/**
 * Whether an engine may accept changes: the majority rule that keeps two groups of engines cut
 * off from each other from both accepting writes (and diverging).
 *
 * Voters are the engines the cluster knows (active or failed; not those that left or were
 * deleted) and, when their number is even, the witnesses: the console and the replica. They
 * hold no state, but they are members whose liveness every engine sees, so they break the tie
 * that an even number of engines cannot: with a console and 2 engines, the engine that
 * survives a crash of the other still sees 2 of 3 voters and keeps accepting writes, while an
 * engine cut off from both the console and the other engine sees 1 of 3 and refuses.
 *
 * Why only for an even number of engines: with an odd number, engines alone already decide
 * every split, and adding witnesses would make the count even again, so that a console that
 * is away (engines keep serving without it) plus one failed engine would stop the writes of a
 * 3-engine cluster. With one engine there is no other copy to diverge from: it always accepts.
 *
 * Invariants:
 * - The voters are a fixed set for a given member list, the same on every engine, so two
 *   disjoint groups of engines can never both see a majority of them, unless a witness is seen
 *   by both. Membership's indirect probes make that case one where the engines still see each
 *   other as active (the witness relays the probes), so they route to one primary and do not
 *   diverge: requests fail rather than fork.
 * - An engine seen as suspect is not counted as seen. When a split leaves engines on both
 *   sides, one side declares the engines across it failed one by one; an engine across it
 *   that it still only suspects would otherwise be counted by both sides, and with more
 *   engines than the replication factor each side can then hold whole replica sets of its
 *   own (seven engines split four and three, the three still suspecting one of the four: the
 *   simulator's lifecycle workload found two sides accepting one replay id this way).
 * - Deleting a failed engine (`cohort cluster delete-node`) shrinks the voters at once.
 */

export interface WriteVotes {
  /** Engines the cluster knows: active or failed, not left or deleted (this one included). */
  knownEngines: number;
  /**
   * Of those, the ones this engine sees as active and not under suspicion (itself included):
   * the caller leaves suspects out (replicated-executor.ts).
   */
  activeEngines: number;
  /** Consoles and replicas the cluster knows (not left or deleted). */
  knownWitnesses: number;
  /** Of those, the ones this engine sees as active. */
  activeWitnesses: number;
}

export interface WriteDecision {
  accepted: boolean;
  /** How many voters there are, how many this engine sees, and how many make a majority. */
  voters: number;
  seen: number;
  need: number;
}

/** A strict majority of `n` voters. */
export function majorityOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

export function decideWrites(v: WriteVotes): WriteDecision {
  const knownEngines = Math.max(v.knownEngines, v.activeEngines, 1);
  const witnesses = knownEngines % 2 === 0 ? Math.max(v.knownWitnesses, v.activeWitnesses) : 0;
  const voters = knownEngines + witnesses;
  const seen = v.activeEngines + (witnesses > 0 ? Math.min(v.activeWitnesses, witnesses) : 0);
  const need = knownEngines === 1 ? 1 : majorityOf(voters);
  return { accepted: seen >= need, voters, seen, need };
}

/** What an operator reads when writes are refused. */
export function describeRefusal(self: string, d: WriteDecision): string {
  return `engine ${self} sees ${d.seen} of ${d.voters} voters (engines, and the console and replica when the engines are even in number), fewer than the ${d.need} of a majority; changes are refused until it does`;
}
