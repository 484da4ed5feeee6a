/**
 * Key names of the redis provider. Pure, tested in test/unit/redis-keys.test.ts.
 *
 * Redis Cluster runs a command (or a script) only when all its keys hash to one slot, and it
 * hashes only the part of a key between the first `{` and the next `}` when there is one (a
 * hash tag). The layout is built so that the keys of every multi-key script share a tag:
 *
 * - A session id is `[<group>.]<p>.<random>` (the grid's form, grid-provider.ts
 *   `parseSessionId`), `p` being the subject's bucket (`partitionOf('subject:' + subject)`, 0
 *   to 270). Its tag `{<group or *>.<p>}` is therefore known from the id alone (a lookup) and
 *   from the creating engine's group and the subject (a listing):
 *     `<prefix>{G.p}s:<id>`               the session (a hash)
 *     `<prefix>{G.p}r:<id>`               its revocation, beside it, so a logout deletes the
 *                                         session and revokes it in one script
 *     `<prefix>{G.p}[@<scope>:]sub:<subject>`   the subject's sessions by end of maximum life
 *     `<prefix>{G.p}[@<scope>:]subc:<subject>`  the same, by creation time (pages walk it)
 * - Any other revocation (a token id, say): `<prefix>r:<id>`, untagged.
 * - The single-key services: `<prefix>[@<scope>:]<kind>:<key>`, untagged.
 *
 * `<scope>` is the service's scope key of state/grid/scopes.ts (`G`, `*|1,2`, `G|1,2`): the
 * same settings that keep the grid's state within a subcluster or a directed set of engines
 * keep it under its own key prefix here; the cluster-wide scope `*` adds nothing, so an
 * engine without group or directed settings uses exactly the keys of the single-server
 * layout. Revocations never carry a scope: every engine sees every revocation. A session is
 * found from its id by every engine, whatever its scope, as the grid routes it by the group
 * in the id; listing by subject sees the sessions of the engine's own session scope.
 *
 * The prefix (`cohort:<cluster id>:`) holds no braces (cluster ids cannot), so a tag is always
 * the one this layout puts there.
 */
import { partitionOf, parseSessionId } from '../grid/grid-provider.js';
import { CLUSTER_SCOPE, scopeGroup } from '../grid/scopes.js';
import type { ScopedService } from '../../config/schema.js';
import { randomToken } from '../../core/ids.js';

/** The single-key services and the kind that names their keys. */
export const SCOPED_KINDS = {
  lockout: 'l',
  replay: 'rp',
  artifact: 'a',
  state: 'st',
  token: 'tk',
  rate_limit: 'b',
} as const satisfies Partial<Record<ScopedService, string>>;

export type SingleKeyService = keyof typeof SCOPED_KINDS;

export interface SubjectKeys {
  /** Ids scored by when their maximum lifetime ends. */
  byEnd: string;
  /** Ids scored by creation time. */
  byCreation: string;
}

export class RedisKeyLayout {
  private readonly sessionScope: string;
  private readonly ownGroup: string | null;

  /** `scopes`: each service's scope key (scopes.ts `scopeKeys`); absent services are cluster-wide. */
  constructor(
    readonly prefix: string,
    private readonly scopes: Partial<Record<ScopedService, string>> = {},
  ) {
    if (/[{}]/.test(prefix)) throw new Error('a Redis key prefix cannot hold { or }: they would decide the hash slot');
    this.sessionScope = scopes.session ?? CLUSTER_SCOPE;
    this.ownGroup = scopeGroup(this.sessionScope);
  }

  /** A new session id of `subject`, tagged for this engine's subcluster. */
  newSessionId(subject: string): string {
    const p = partitionOf(`subject:${subject}`);
    return `${this.ownGroup === null ? '' : `${this.ownGroup}.`}${p}.${randomToken(24)}`;
  }

  /** The key of session `id`, or undefined when `id` is not a session id (no such session can exist). */
  session(id: string): string | undefined {
    const tag = sessionTag(id);
    return tag === undefined ? undefined : `${this.prefix}{${tag}}s:${id}`;
  }

  /**
   * Where the single-server layout of earlier releases kept session `id` (random ids, not
   * session ids of this layout): `<prefix>s:<id>`, untagged. Read only on a single server,
   * where such sessions can exist, so that an upgrade signs no one out.
   */
  legacySession(id: string): string {
    return `${this.prefix}s:${id}`;
  }

  /** The revocation of `id`: beside its session when `id` is a session id. Never scoped. */
  revocation(id: string): string {
    const tag = sessionTag(id);
    return tag === undefined ? `${this.prefix}r:${id}` : `${this.prefix}{${tag}}r:${id}`;
  }

  /** The indexes of `subject`'s sessions in this engine's session scope. */
  subject(subject: string): SubjectKeys {
    const tag = `${this.ownGroup ?? CLUSTER_SCOPE}.${partitionOf(`subject:${subject}`)}`;
    const base = `${this.prefix}{${tag}}${scopeSegment(this.sessionScope)}`;
    return { byEnd: `${base}sub:${subject}`, byCreation: `${base}subc:${subject}` };
  }

  /** The key of `key` for a single-key service, under that service's scope. */
  scoped(service: SingleKeyService, key: string): string {
    return `${this.prefix}${scopeSegment(this.scopes[service] ?? CLUSTER_SCOPE)}${SCOPED_KINDS[service]}:${key}`;
  }
}

function scopeSegment(scope: string): string {
  return scope === CLUSTER_SCOPE ? '' : `@${scope}:`;
}

/** `<group or *>.<p>` of a session id; undefined when `id` is not one. */
function sessionTag(id: string): string | undefined {
  const parsed = parseSessionId(id);
  return parsed === undefined ? undefined : `${parsed.group ?? CLUSTER_SCOPE}.${parsed.partition}`;
}

/**
 * The Redis Cluster slot of `key` (CRC16/XMODEM of the hash tag, or of the whole key, mod
 * 16384), as the server computes it: tests prove with it that a script's keys share a slot.
 */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
