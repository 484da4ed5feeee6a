/**
 * OpenID Connect back-channel logout (`POST /runtime/v1/oidc/backchannel-logout`): the provider
 * posts a logout token (a JWT, form field `logout_token`) when a user's provider session ends.
 *
 * The token is verified with jose against the provider's key set: issuer = the `login.issuer`
 * of an API, audience = that API's client id, asymmetric signature, `iat` within the last
 * few minutes, the back-channel logout event in `events`, no `nonce` (so an ID token cannot be
 * passed off as one), `sub` or `sid`, and `jti`. Only then is its `jti` put through replay
 * prevention (cluster-wide, once): a replayed token revokes nothing again. Every session that
 * provider session (`sid`), or that user at that issuer (`sub` alone), signed in is deleted,
 * which revokes its id on every engine.
 */
import { createHash } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../../core/clock.js';
import { CohortError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { JWT_ALGORITHMS } from '../../policy/config-sections.js';
import type { Session, SessionCursor, StateProvider } from '../../state/services.js';
import type { CompiledApi, LoginDefinition } from '../access/definitions.js';
import type { RelyingParties } from './relying-party.js';
import { sessionsOfSid } from './session-index.js';
import { LOGIN_ATTRIBUTE, providerTokensKey, type LoginAttribute } from './sign-in.js';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** How old a logout token may be (its `iat`), and how long its `jti` is remembered after. */
const MAX_TOKEN_AGE_SECONDS = 300;
const CLOCK_TOLERANCE_SECONDS = 30;
const PAGE = 500;

export interface BackchannelContext {
  provider: StateProvider;
  apis: CompiledApi[];
  parties: RelyingParties;
  clock: Clock;
  log: Logger;
}

const invalid = (why: string): CohortError => new CohortError('LOGOUT_TOKEN_INVALID', `logout token refused: ${why}`);

/** Verifies `token` and revokes what it names; the number of sessions ended. */
export async function backchannelLogout(token: string, ctx: BackchannelContext): Promise<{ revoked: number }> {
  let unverified: JWTPayload;
  try {
    unverified = decodeJwt(token);
  } catch {
    throw invalid('not a JWT');
  }
  const logins = ctx.apis.filter((a): a is CompiledApi & { login: LoginDefinition } => a.login !== undefined && !a.broken && a.login.issuer === unverified.iss);
  if (logins.length === 0) throw invalid('no API signs in with that issuer');
  const clientIds = [...new Set(logins.map((a) => a.login.clientId))];

  let claims: JWTPayload;
  try {
    const { payload } = await jwtVerify(token, await ctx.parties.keySet(logins[0]!.login), {
      issuer: logins[0]!.login.issuer,
      audience: clientIds,
      algorithms: [...JWT_ALGORITHMS],
      maxTokenAge: MAX_TOKEN_AGE_SECONDS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(ctx.clock.now()),
    });
    claims = payload;
  } catch (err) {
    if (err instanceof CohortError) throw err;
    if (err instanceof joseErrors.JOSEError) throw invalid(`${err.code}: ${err.message}`);
    throw new CohortError('LOGIN_PROVIDER_UNAVAILABLE', `the provider's keys could not be fetched: ${(err as Error).message}`);
  }
  const events = claims.events as Record<string, unknown> | undefined;
  if (events === null || typeof events !== 'object' || typeof events[BACKCHANNEL_LOGOUT_EVENT] !== 'object') throw invalid('no back-channel logout event');
  if (claims.nonce !== undefined) throw invalid('a logout token carries no nonce');
  const sub = typeof claims.sub === 'string' && claims.sub.length > 0 ? claims.sub : undefined;
  const sid = typeof claims.sid === 'string' && claims.sid.length > 0 ? claims.sid : undefined;
  if (sub === undefined && sid === undefined) throw invalid('neither sub nor sid');
  if (typeof claims.jti !== 'string' || claims.jti.length === 0) throw invalid('no jti');
  const issuer = claims.iss!;

  const jtiKey = `oidc:logout:${createHash('sha256').update(`${issuer}\n${claims.jti}`).digest('base64url')}`;
  if (!(await ctx.provider.replay.checkAndInsert(jtiKey, (MAX_TOKEN_AGE_SECONDS + 2 * CLOCK_TOLERANCE_SECONDS) * 1000))) {
    throw new CohortError('LOGOUT_TOKEN_REPLAYED', 'logout token refused: its jti was seen before');
  }

  const ids = new Set<string>(sid === undefined ? [] : await sessionsOfSid(ctx.provider, issuer, sid));
  if (sub !== undefined) {
    for await (const s of sessionsOf(ctx.provider, sub)) {
      const login = s.attributes[LOGIN_ATTRIBUTE] as LoginAttribute | undefined;
      if (login?.issuer === issuer && (sid === undefined || login.sid === sid)) ids.add(s.id);
    }
  }
  let revoked = 0;
  for (const id of ids) {
    if (await ctx.provider.sessions.delete(id)) revoked += 1;
    await ctx.provider.tokens.delete(providerTokensKey(id));
  }
  ctx.log.info({ issuer, sub, sid, revoked }, 'back-channel logout: sessions revoked');
  return { revoked };
}

async function* sessionsOf(provider: StateProvider, subject: string): AsyncGenerator<Session> {
  let after: SessionCursor | undefined;
  do {
    const page = await provider.sessions.pageBySubject(subject, { limit: PAGE, ...(after ? { after } : {}) });
    yield* page.sessions;
    after = page.next;
  } while (after !== undefined);
}
