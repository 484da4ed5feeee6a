/**
 * The decision function: whether a request to a protected API may pass. Every front door
 * (forward auth, Envoy, the JSON route, the inline proxy) turns its request into an
 * `AccessRequest` and its answer from the `Decision`, so a request gets the same decision
 * whichever door and whichever engine it reaches.
 *
 * Order: path check → match (longest prefix, hosts, then methods) → deny list by address →
 * lock-out by address → credential (lock-out by subject once the credential names one) →
 * revocation → deny list by subject / API key / session → single-use JWT → rate limit. The
 * first step that denies gives the reason. In monitor mode (`enforce: false`) the deny is
 * reported as `wouldDeny` and the request allowed. A failure of the runtime state denies with
 * ACCESS_UNAVAILABLE (fail closed) unless the API sets `onStateUnavailable: allow`.
 */
import type { Clock } from '../../core/clock.js';
import { drive, isPromise, wait, type MaybePromise, type Steps } from '../../core/maybe-async.js';
import { correlationId } from '../../core/ids.js';
import type { LockoutPolicy, RateLimitPolicy, StateProvider } from '../../state/services.js';
import { isBlocked, parseAddress, type ClientAddress } from './address.js';
import { bearer, checkCredential, cookie, type Headers, type Identity } from './credentials.js';
import type { DecisionCaches } from './decision-caches.js';
import type { AccessDefinitions, CompiledApi } from './definitions.js';
import { isPublicPath, matchApi } from './match.js';
import { reasonStatus, type AccessReason } from './reasons.js';
import { bucketKey } from './rate-allotments.js';
import { checkedPath } from './request-path.js';

export interface AccessRequest {
  method: string;
  /** Path and query, as the client sent them (percent-encoded). */
  url: string;
  host?: string | undefined;
  sourceIp: string;
  headers: Headers;
}

/** The runtime state a decision uses, and the policies of the `runtime` section. */
export interface AccessState {
  provider: StateProvider;
  lockoutPolicy: LockoutPolicy;
  rateLimit(policy: string): RateLimitPolicy;
  /**
   * The engine's session records, rate-limit allotments and verified JWTs: without them every
   * decision reads and touches the session, takes its token and checks the signature anew.
   */
  caches?: DecisionCaches | undefined;
}

export interface Decision {
  decisionId: string;
  allow: boolean;
  /** 200 on allow; else the status the reason carries. */
  status: number;
  reason: AccessReason;
  /** Monitor mode: the reason the request would have been denied for. */
  wouldDeny?: AccessReason;
  api?: string;
  enforce: boolean;
  identity?: Identity;
  retryAfterSeconds?: number;
  /** Identity headers for the upstream (allow only). */
  upstreamHeaders: Record<string, string>;
  /** The lock-out key failures of this request count against (the response phase uses it). */
  lockoutKey?: string;
  /** Why, in words, for the decision log. */
  detail?: string;
  method: string;
  path: string;
  sourceIp: string;
  durationMs: number;
}

const METHOD = /^[A-Za-z]{1,20}$/;

interface Verdict {
  reason: AccessReason;
  detail?: string;
  retryAfterSeconds?: number;
}

/** What the steps found so far, for the answer. */
interface Progress {
  identity?: Identity;
  lockoutKey?: string;
}

/**
 * The decision on `request`: at once when every step has its answer at hand (the usual case on
 * an engine: a cached session, the local revocation list, a token of a held rate-limit
 * allotment), else a promise (core/maybe-async.ts).
 */
export function decide(request: AccessRequest, definitions: AccessDefinitions, state: AccessState, clock: Clock): MaybePromise<Decision> {
  const started = clock.now();
  const decisionId = correlationId();
  const path = checkedPath(request.url);
  const address = parseAddress(request.sourceIp);
  const finish = (verdict: Verdict, api: CompiledApi | undefined, progress: Progress = {}): Decision => {
    const allowed = verdict.reason === 'ACCESS_ALLOWED';
    const enforce = api?.enforce ?? true;
    const monitored = !allowed && !enforce;
    // Built field by field: object spreads of conditional parts cost more than the decision itself on the hot path.
    const decision: Decision = {
      decisionId,
      allow: allowed || monitored,
      status: allowed || monitored ? 200 : reasonStatus(verdict.reason),
      reason: monitored ? 'ACCESS_ALLOWED' : verdict.reason,
      enforce,
      upstreamHeaders: {},
      method: request.method,
      path: path ?? request.url,
      sourceIp: request.sourceIp,
      durationMs: clock.now() - started,
    };
    if (monitored) decision.wouldDeny = verdict.reason;
    if (api) decision.api = api.id;
    if (progress.identity) decision.identity = progress.identity;
    if (progress.lockoutKey) decision.lockoutKey = progress.lockoutKey;
    if (verdict.detail) decision.detail = verdict.detail;
    if (verdict.retryAfterSeconds !== undefined && !monitored) decision.retryAfterSeconds = verdict.retryAfterSeconds;
    if (decision.allow && api) decision.upstreamHeaders = identityHeaders(api, decision);
    return decision;
  };

  if (path === undefined) return finish({ reason: 'ACCESS_BAD_REQUEST', detail: 'path cannot be judged safely' }, undefined);
  if (!METHOD.test(request.method)) return finish({ reason: 'ACCESS_BAD_REQUEST', detail: 'bad method' }, undefined);
  if (!address) return finish({ reason: 'ACCESS_BAD_REQUEST', detail: 'source address is not an IP address' }, undefined);

  const match = matchApi(definitions.apis, request.method, path, request.host);
  if (!match) return finish(definitions.allowUnmatched ? { reason: 'ACCESS_ALLOWED', detail: 'no API; unmatched requests allowed' } : { reason: 'ACCESS_NO_API' }, undefined);
  const { api } = match;
  if (api.broken) return finish({ reason: 'ACCESS_UNAVAILABLE', detail: 'the API definition could not be compiled (see the engine log)' }, api);
  if (!match.methodAllowed) return finish({ reason: 'ACCESS_METHOD_NOT_ALLOWED' }, api);

  const progress: Progress = {};
  const unavailable = (err: unknown): Decision => {
    const detail = `state unavailable: ${(err as Error).message}`;
    if (api.failOpen) return finish({ reason: 'ACCESS_ALLOWED', detail: `${detail} (onStateUnavailable: allow)` }, api, progress);
    return finish({ reason: 'ACCESS_UNAVAILABLE', detail }, api, progress);
  };
  let verdict: MaybePromise<Verdict>;
  try {
    verdict = drive(steps(api, request, path, address, definitions, state, started, progress));
  } catch (err) {
    return unavailable(err);
  }
  return isPromise(verdict) ? verdict.then((v) => finish(v, api, progress), unavailable) : finish(verdict, api, progress);
}

/**
 * The steps after the match, in order; `yield* wait(x)` where a step may have to wait for the
 * state. `started`: the decision's time, read once. The steps judge by it (a JWT's expiry, a
 * cached session's freshness, an allotment's lease, a single-use token's memory) even after one
 * of them waited for the state: a decision is taken as of the moment the request came, and a
 * read of the clock is not free.
 */
function* steps(api: CompiledApi, request: AccessRequest, path: string, address: ClientAddress, definitions: AccessDefinitions, state: AccessState, started: number, progress: Progress): Steps<Verdict> {
  const { provider } = state;
  if (isBlocked(api.denyAddresses, address)) return { reason: 'ACCESS_DENIED_ADDRESS' };

  if (api.lockout?.by === 'ip') {
    progress.lockoutKey = `access:ip:${address.address}`;
    const locked = yield* wait(lockedVerdict(state, progress.lockoutKey));
    if (locked) return locked;
  }

  let identity: Identity | undefined;
  if (!isPublicPath(api, path)) {
    const outcome = yield* checkCredential(api, request.headers, { provider, clientKeys: definitions.clientKeys, nowMs: started, caches: state.caches });
    if (outcome.kind === 'none') return { reason: 'ACCESS_NO_CREDENTIAL' };
    if (outcome.kind === 'failed') {
      if (outcome.unavailable) throw new Error(outcome.why);
      // A session id that names no session may be a revoked one: say so.
      if (outcome.reason === 'ACCESS_SESSION_UNKNOWN' && api.checkRevocation) {
        const id = sessionIdPresented(api, request.headers);
        if (id !== undefined && id.length <= 512 && (yield* wait(provider.revocations.isRevoked(id)))) return yield* wait(failed(state, progress, { reason: 'ACCESS_REVOKED' }));
      }
      return yield* wait(failed(state, progress, { reason: outcome.reason, detail: outcome.why }));
    }
    identity = outcome.identity;
    progress.identity = identity;
    if (api.lockout?.by === 'subject' && identity.subject !== undefined) {
      progress.lockoutKey = `access:subject:${identity.subject}`;
      const locked = yield* wait(lockedVerdict(state, progress.lockoutKey));
      if (locked) return locked;
    }

    if (api.checkRevocation && identity.revocationChecked !== true) {
      const ids = identity.kind === 'jwt' ? [identity.claims?.jti, identity.claims?.sid] : [identity.sessionId];
      for (const id of ids) {
        if (typeof id === 'string' && id.length > 0 && (yield* wait(provider.revocations.isRevoked(id)))) return { reason: 'ACCESS_REVOKED' };
      }
    }

    if ((identity.subject !== undefined && api.denySubjects.has(identity.subject))
      || (identity.apiKeyId !== undefined && api.denyApiKeys.has(identity.apiKeyId))
      || (identity.sessionId !== undefined && api.denySessions.has(identity.sessionId))) {
      return { reason: 'ACCESS_DENIED_SUBJECT' };
    }

    if (api.singleUseTokens && identity.kind === 'jwt') {
      const { jti, exp, iss } = identity.claims ?? {};
      if (typeof jti !== 'string' || jti.length === 0 || typeof exp !== 'number') return { reason: 'ACCESS_TOKEN_REPLAYED', detail: 'a single-use token needs jti and exp' };
      // Remembered until the token expires (and its clock tolerance has passed), so it can never be taken twice.
      const ttlMs = Math.max(1000, exp * 1000 - started + 600_000);
      if (!(yield* wait(provider.replay.checkAndInsert(`access:jti:${iss ?? ''}:${jti}`, ttlMs)))) return { reason: 'ACCESS_TOKEN_REPLAYED' };
    }
  }

  if (api.rateLimit) {
    const { policy } = api.rateLimit;
    // Without the subject or key the policy names (a public path), the address stands in.
    const named = api.rateLimit.by === 'subject' ? identity?.subject : api.rateLimit.by === 'apiKey' ? identity?.apiKeyId : undefined;
    const by = named === undefined ? 'ip' : api.rateLimit.by;
    const value = named ?? address.address;
    const limits = state.rateLimit(policy);
    const allowed = state.caches ? yield* wait(state.caches.rateLimits.take(policy, by, value, limits, started)) : (yield* wait(provider.rateLimits.take(policy, bucketKey(by, value), limits))).allowed;
    if (!allowed) return { reason: 'ACCESS_RATE_LIMITED', retryAfterSeconds: Math.max(1, Math.ceil(1 / limits.refillPerSecond)) };
  }
  return { reason: 'ACCESS_ALLOWED' };
}

function sessionIdPresented(api: CompiledApi, headers: Headers): string | undefined {
  return cookie(headers, api.sessionCookie) ?? bearer(headers);
}

async function lockedVerdict(state: AccessState, key: string): Promise<Verdict | undefined> {
  const status = await state.provider.lockout.status(key, state.lockoutPolicy);
  return status.locked ? { reason: 'ACCESS_LOCKED', retryAfterSeconds: Math.max(1, Math.ceil(status.retryAfterMs / 1000)) } : undefined;
}

/** A failed credential check counts as a lock-out failure of the address (lockout by ip). */
async function failed(state: AccessState, progress: Progress, verdict: Verdict): Promise<Verdict> {
  if (progress.lockoutKey?.startsWith('access:ip:')) await state.provider.lockout.recordFailure(progress.lockoutKey, state.lockoutPolicy);
  return verdict;
}

/** Header values are single lines: anything that could split a header is dropped. */
// eslint-disable-next-line no-control-regex
const HEADER_BREAKING = /[\u0000-\u001f\u007f]/g;

/** A loop, not a regular expression: on every allow, for a few short values, it costs less. */
function headerSafe(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return v.replace(HEADER_BREAKING, '');
  }
  return v;
}

function identityHeaders(api: CompiledApi, d: Decision): Record<string, string> {
  const out: Record<string, string> = {};
  const sources = api.identitySources;
  for (let i = 0; i < sources.length; i++) {
    const { name, source, claim } = sources[i]!;
    let value: unknown;
    if (source === 'subject') value = d.identity?.subject;
    else if (source === 'sessionId') value = d.identity?.sessionId;
    else if (source === 'apiKeyId') value = d.identity?.apiKeyId;
    else if (source === 'api') value = d.api;
    else if (source === 'decisionId') value = d.decisionId;
    else if (source === 'claim') value = d.identity?.claims?.[claim!];
    if (value === undefined || value === null) continue;
    out[name] = headerSafe(typeof value === 'string' ? value : JSON.stringify(value));
  }
  return out;
}
