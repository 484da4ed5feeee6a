/**
 * What a node announces about itself in its membership metadata, and the check of what
 * others announce. The cluster layer carries this as an opaque object (cluster/member-meta.ts);
 * the fields are the node's, the grid's and the console's, and are declared here.
 *
 * The fields are merged into the cluster layer's `MemberMeta` (TypeScript interface merging),
 * so every `Member`'s `meta` reads typed wherever a layer that knows roles uses it (this
 * directory, the grid's directory, the console); the cluster layer itself never names one.
 *
 * Wire compatibility: these are the JSON fields every version since the first has sent.
 * `isNodeMeta` checks the ones it knows and lets others through, so a newer node may add
 * fields an older one carries without reading.
 */
import type { MemberMeta } from '../cluster/member-meta.js';

/**
 * What a node says about itself; spread by alive messages and push-pull. A type rather than an
 * interface, so a NodeMeta is also a MemberMeta (a JSON object of any fields).
 */
export type NodeMeta = {
  role: string;
  version: string;
  mode: string;
  group: string | null;
  /**
   * An engine that holds its share of the runtime state (its start-up sync is done): the
   * grid places partitions on these only. Absent on other roles and on engines still syncing.
   */
  holdsState?: boolean;
  /** An engine's `node_index` (directed placement), when it has one. */
  index?: number;
  /** The scopes other than cluster-wide that an engine keeps state in (state/grid/scopes.ts). */
  scopes?: string[];
  /** An engine's session scope when not cluster-wide: where its subcluster's sessions live. */
  sessionScope?: string;
  /** A console's configuration epoch: engines follow the console with the highest. */
  epoch?: number;
  /**
   * How many engines an engine counts in the cluster: those it knows and, until it serves,
   * those its previous run knew. The grid's majorities count the most any engine announces
   * (state/grid/grid-engine.ts).
   */
  engineCount?: number;
  /** An engine that refuses changes to the runtime state: it sees no majority of the voters. */
  refusesWrites?: boolean;
  /** An engine's runtime API address, `host:port` (`cohort lb` writes load-balancer configurations from it). */
  runtime?: string;
};

declare module '../cluster/member-meta.js' {
  // Interface merging: the node's fields become the fields of every member's metadata.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface MemberMeta extends NodeMeta {}
}

type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === 'string' && v.length <= 512;
const int: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const bool: Check = (v) => typeof v === 'boolean';
const optional = (c: Check): Check => (v) => v === undefined || c(v);
const nullableStr: Check = (v) => v === null || str(v);
const strings = (max: number): Check => (v) => Array.isArray(v) && v.length <= max && v.every(str);

/** Every field a node reads from another's metadata, with its type; unknown fields are not listed, so they pass. */
const NODE_META_FIELDS: Record<keyof NodeMeta, Check> = {
  role: str,
  version: str,
  mode: str,
  group: nullableStr,
  holdsState: optional(bool),
  index: optional(int),
  scopes: optional(strings(16)),
  sessionScope: optional(str),
  epoch: optional(int),
  engineCount: optional(int),
  refusesWrites: optional(bool),
  runtime: optional(str),
};

/** Whether `meta` has every field a node needs, of the right type (fields it does not know are let through). */
export function isNodeMeta(meta: MemberMeta): boolean {
  const fields = meta as Readonly<Record<string, unknown>>;
  for (const [field, check] of Object.entries(NODE_META_FIELDS)) if (!check(fields[field])) return false;
  return true;
}
