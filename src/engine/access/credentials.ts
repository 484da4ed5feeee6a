/**
 * The credential of a request, tried in the order of the API's `credentials`: the first kind
 * the request carries decides (a present but wrong credential is not passed over for the next
 * kind, so a bad session cookie cannot be rescued by, or hide behind, another header).
 */
import { hash } from 'node:crypto';
import { wait, type Steps } from '../../core/maybe-async.js';
import type { JWTPayload } from 'jose';
import type { StateProvider } from '../../state/services.js';
import type { DecisionCaches } from './decision-caches.js';
import type { CompiledApi } from './definitions.js';
import { looksLikeJwt } from './jwt.js';
import type { AccessReason } from './reasons.js';

export type Headers = Record<string, string | string[] | undefined>;

export interface Identity {
  kind: 'session' | 'apiKey' | 'jwt';
  subject?: string;
  sessionId?: string;
  apiKeyId?: string;
  claims?: JWTPayload;
  /** The session id was just checked against the revocation list (the session cache checks it before every use). */
  revocationChecked?: boolean;
}

export type CredentialOutcome =
  | { kind: 'none' }
  | { kind: 'failed'; reason: AccessReason; why: string; unavailable?: boolean }
  | { kind: 'ok'; identity: Identity };

/** Session ids and API keys longer than this are refused unread. */
const MAX_OPAQUE_LENGTH = 512;

export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function bearer(headers: Headers): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header(headers, 'authorization') ?? '');
  return m ? m[1] : undefined;
}

export function cookie(headers: Headers, name: string): string | undefined {
  const raw = headers.cookie;
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) return cookieIn(raw, name);
  for (const line of raw) {
    const v = cookieIn(line, name);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** The value of cookie `name` in one Cookie header line (`a=1; b="2"`), unquoted. Scanned in place: it runs on every decision. */
function cookieIn(line: string, name: string): string | undefined {
  let start = 0;
  while (start < line.length) {
    let end = line.indexOf(';', start);
    if (end < 0) end = line.length;
    const eq = line.indexOf('=', start);
    if (eq > start && eq < end && line.slice(start, eq).trim() === name) {
      const v = line.slice(eq + 1, end).trim();
      return v.length >= 2 && v[0] === '"' && v[v.length - 1] === '"' ? v.slice(1, -1) : v;
    }
    start = end + 1;
  }
  return undefined;
}

export interface CredentialContext {
  provider: StateProvider;
  clientKeys: Map<string, { id: string }>;
  nowMs: number;
  /** Session records and verified JWTs kept between decisions (decision-caches.ts). */
  caches?: Pick<DecisionCaches, 'sessions' | 'jwts'> | undefined;
}

/** Which credential of `kind` the request carries, if any. */
function presented(api: CompiledApi, kind: Identity['kind'], headers: Headers): string | undefined {
  const token = bearer(headers);
  if (kind === 'session') return cookie(headers, api.sessionCookie) ?? (token !== undefined && !looksLikeJwt(token) ? token : undefined);
  if (kind === 'apiKey') return header(headers, 'x-api-key');
  return token !== undefined && looksLikeJwt(token) ? token : undefined;
}

/**
 * The session of `id`, touched: using it through an API keeps it alive, as a lookup with
 * touch does. A touch is a write; when writes are refused (an engine that sees no majority
 * still answers reads) the session is read without extending it, so a valid session still
 * passes and nothing is extended that could not be.
 */
async function liveSession(provider: StateProvider, id: string): Promise<{ id: string; subject: string } | undefined> {
  try {
    return await provider.sessions.get(id, { touch: true });
  } catch {
    return provider.sessions.get(id);
  }
}

/** The request's credential checked (a step of decide.ts's driven steps: `yield*` it). */
export function* checkCredential(api: CompiledApi, headers: Headers, ctx: CredentialContext): Steps<CredentialOutcome> {
  for (const kind of api.credentials) {
    const value = presented(api, kind, headers);
    if (value === undefined || value === '') continue;
    if (kind === 'session') {
      if (value.length > MAX_OPAQUE_LENGTH) return { kind: 'failed', reason: 'ACCESS_SESSION_UNKNOWN', why: 'session id too long' };
      const session = ctx.caches ? yield* wait(ctx.caches.sessions.lookup(value, ctx.nowMs)) : yield* wait(liveSession(ctx.provider, value));
      if (!session) return { kind: 'failed', reason: 'ACCESS_SESSION_UNKNOWN', why: 'no live session by that id' };
      // The session cache checks the revocation list before every use of a copy.
      return { kind: 'ok', identity: { kind, subject: session.subject, sessionId: session.id, revocationChecked: ctx.caches !== undefined } };
    }
    if (kind === 'apiKey') {
      const key = value.length > MAX_OPAQUE_LENGTH ? undefined : ctx.clientKeys.get(hash('sha256', value, 'hex'));
      if (!key) return { kind: 'failed', reason: 'ACCESS_INVALID_CREDENTIAL', why: 'not a client API key' };
      return { kind: 'ok', identity: { kind, apiKeyId: key.id, subject: `apiKey:${key.id}` } };
    }
    if (!api.jwt) return { kind: 'failed', reason: 'ACCESS_INVALID_CREDENTIAL', why: 'no key set' };
    const result = ctx.caches ? yield* wait(ctx.caches.jwts.verify(api.jwt, value, ctx.nowMs)) : yield* wait(api.jwt.verify(value, ctx.nowMs));
    if (!result.ok) return { kind: 'failed', reason: 'ACCESS_INVALID_CREDENTIAL', why: `JWT refused: ${result.why}`, ...(result.unavailable ? { unavailable: true } : {}) };
    // Built field by field: spreads of conditional parts cost a slow copy on every decision.
    const identity: Identity = { kind, claims: result.claims };
    if (typeof result.claims.sub === 'string') identity.subject = result.claims.sub;
    if (typeof result.claims.sid === 'string') identity.sessionId = result.claims.sid;
    return { kind: 'ok', identity };
  }
  return { kind: 'none' };
}
