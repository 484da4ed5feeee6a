/**
 * Web sign-in at the gateway: the OpenID Connect authorization-code flow with PKCE that turns a
 * browser without a session into one with a Cohort session, and `/_cohort/logout`.
 *
 * 1. A browser's GET to a path of an API with `login`, denied for want of a (live) session, is
 *    sent to the provider's authorization endpoint. `state`, `nonce`, the PKCE verifier, the
 *    redirect URI and the original path are kept in inter-request state (the grid, 10 minutes)
 *    under the state, so the callback may land on any engine; a `cohort_login` cookie holding
 *    the state binds the flow to this browser (no one can make a victim's browser complete a
 *    sign-in started elsewhere).
 * 2. `<prefix>/_cohort/callback`: the state entry is consumed once (a second callback with the
 *    same state finds nothing), the code exchanged with the verifier, the ID token checked by
 *    openid-client (signature, issuer, audience = client id, nonce, times). Then a session:
 *    subject = `sub`, attributes = the configured claims and `cohortLogin` ({api, issuer, sid}),
 *    idle and absolute timeouts of the `services` section; the provider's tokens go to the
 *    token cache under the session (for token exchange and the logout hint); the session
 *    cookie is set and the browser returns to the original path (always a path on this
 *    origin: no open redirect).
 * 3. `<prefix>/_cohort/logout`: the session is deleted (which revokes it on every engine) and
 *    the browser is sent to the provider's end-session endpoint when it has one
 *    (RP-initiated logout), else to `postLogoutRedirect`.
 */
import * as client from 'openid-client';
import type { Clock } from '../../core/clock.js';
import { CohortError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { StateProvider } from '../../state/services.js';
import type { RuntimeSettings } from '../runtime-settings.js';
import { cookie, type Headers } from '../access/credentials.js';
import type { Decision } from '../access/decide.js';
import type { CompiledApi, LoginDefinition } from '../access/definitions.js';
import { matchApi } from '../access/match.js';
import { checkedPath } from '../access/request-path.js';
import { clearCookie, setCookie } from './cookies.js';
import type { RelyingParties } from './relying-party.js';
import { rememberSid, sessionsOfSid } from './session-index.js';

/** A request as the browser made it (inline: the request itself; forward auth: the X-Forwarded-* headers). */
export interface WebRequest {
  method: string;
  /** Path and query as the browser sent them. */
  url: string;
  host: string | undefined;
  /** The browser reached the engine (or the proxy before it) over TLS. */
  secure: boolean;
  headers: Headers;
}

/** What to answer the browser. */
export interface WebAnswer {
  status: number;
  /** For X-Cohort-Reason: ACCESS_NO_CREDENTIAL (sent to sign in), ACCESS_ALLOWED (signed in or out), or the error's code. */
  reason: string;
  headers: Record<string, string | string[]>;
  body?: { error: { code: string; message: string } };
  /** A page instead of a JSON body (front-channel logout). */
  html?: string;
}

export interface SignInContext {
  provider: StateProvider;
  settings: RuntimeSettings;
  parties: RelyingParties;
  clock: Clock;
  log: Logger;
}

export type LoginRoute = 'callback' | 'logout' | 'frontchannel-logout';

export const CALLBACK_PATH = '/_cohort/callback';
export const LOGOUT_PATH = '/_cohort/logout';
export const FRONTCHANNEL_LOGOUT_PATH = '/_cohort/frontchannel-logout';
export const LOGIN_COOKIE = 'cohort_login';
/** How long a started sign-in may take at the provider. */
const STATE_TTL_MS = 10 * 60_000;
/** The attribute of a signed-in session that says where it came from. */
export const LOGIN_ATTRIBUTE = 'cohortLogin';

export interface LoginAttribute {
  api: string;
  issuer: string;
  sid?: string;
}

interface PendingSignIn {
  api: string;
  verifier: string;
  nonce: string;
  redirectUri: string;
  returnTo: string;
}

const STATE = /^[A-Za-z0-9_-]{16,128}$/;
const HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/;

/** A path under the API's prefix (`/app` + `/_cohort/callback`, `/` + ... without a double slash). */
export function underPrefix(prefix: string, path: string): string {
  return `${prefix.replace(/\/+$/, '')}${path}`;
}

/** The API with login whose callback or logout path `url` is, if any. */
export function loginRoute(apis: CompiledApi[], method: string, url: string, host: string | undefined): { api: CompiledApi & { login: LoginDefinition }; route: LoginRoute } | undefined {
  const path = checkedPath(url);
  if (path === undefined || !path.includes('/_cohort/')) return undefined;
  const match = matchApi(apis, method, path, host);
  const api = match?.api;
  if (api?.login === undefined || api.broken) return undefined;
  if (path === underPrefix(api.pathPrefix, CALLBACK_PATH)) return { api: api as CompiledApi & { login: LoginDefinition }, route: 'callback' };
  if (path === underPrefix(api.pathPrefix, LOGOUT_PATH)) return { api: api as CompiledApi & { login: LoginDefinition }, route: 'logout' };
  if (path === underPrefix(api.pathPrefix, FRONTCHANNEL_LOGOUT_PATH)) return { api: api as CompiledApi & { login: LoginDefinition }, route: 'frontchannel-logout' };
  return undefined;
}

/**
 * Whether a denied request should be sent to sign in rather than refused: an API with login, a
 * browser navigation (GET or HEAD accepting HTML), and a missing, unknown or revoked session.
 * Other callers (scripts, XHR asking for JSON) keep the 401 they can act on.
 */
export function wantsSignIn(api: CompiledApi | undefined, d: Decision, req: WebRequest): api is CompiledApi & { login: LoginDefinition } {
  if (api?.login === undefined || d.allow) return false;
  if (d.reason !== 'ACCESS_NO_CREDENTIAL' && d.reason !== 'ACCESS_SESSION_UNKNOWN' && d.reason !== 'ACCESS_REVOKED') return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const accept = req.headers.accept;
  return (Array.isArray(accept) ? accept.join(',') : accept ?? '').includes('text/html');
}

function origin(req: WebRequest): string {
  if (req.host === undefined || !HOST.test(req.host)) throw new CohortError('ACCESS_BAD_REQUEST', 'a sign-in needs a valid Host');
  return `${req.secure ? 'https' : 'http'}://${req.host}`;
}

/** A path on this origin to return to: anything else (`//evil`, `/\evil`, a URL) becomes the API's prefix. */
export function safeReturnPath(candidate: string | undefined, fallback: string): string {
  // eslint-disable-next-line no-control-regex
  if (candidate === undefined || !candidate.startsWith('/') || candidate.startsWith('//') || candidate.startsWith('/\\') || /[\u0000-\u001f\u007f]/.test(candidate)) return fallback;
  return candidate;
}

function cookiePath(api: CompiledApi): string {
  return api.pathPrefix.replace(/\/+$/, '') || '/';
}

/** Step 1: the redirect to the provider. */
export async function startSignIn(api: CompiledApi & { login: LoginDefinition }, req: WebRequest, ctx: SignInContext): Promise<WebAnswer> {
  const config = await ctx.parties.configuration(api.login);
  const redirectUri = `${origin(req)}${underPrefix(api.pathPrefix, CALLBACK_PATH)}`;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const pending: PendingSignIn = { api: api.id, verifier, nonce, redirectUri, returnTo: safeReturnPath(req.url, cookiePath(api)) };
  await ctx.provider.requestState.put(`oidc:state:${state}`, pending, STATE_TTL_MS);
  const scopes = new Set(['openid', ...(api.login.scopes ?? [])]);
  const location = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: [...scopes].join(' '),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return {
    status: 302,
    reason: 'ACCESS_NO_CREDENTIAL',
    headers: {
      location: location.href,
      'cache-control': 'no-store',
      'set-cookie': setCookie(LOGIN_COOKIE, state, { path: cookiePath(api), secure: req.secure, maxAgeSeconds: STATE_TTL_MS / 1000 }),
    },
  };
}

/** The sign-in's state entry, consumed: found once, whichever engine asks. */
async function takePending(api: CompiledApi, state: string | undefined, req: WebRequest, provider: StateProvider): Promise<PendingSignIn> {
  if (state === undefined || !STATE.test(state)) throw new CohortError('LOGIN_STATE_INVALID', 'the callback carries no valid state');
  if (cookie(req.headers, LOGIN_COOKIE) !== state) throw new CohortError('LOGIN_STATE_INVALID', 'the callback\'s state is not the sign-in this browser started');
  const key = `oidc:state:${state}`;
  const pending = (await provider.requestState.get(key)) as PendingSignIn | undefined;
  // The delete decides who consumed it: of two callbacks racing with one state, one wins.
  if (pending === undefined || !(await provider.requestState.delete(key))) throw new CohortError('LOGIN_STATE_INVALID', 'the sign-in state is unknown, expired or already used');
  if (pending.api !== api.id) throw new CohortError('LOGIN_STATE_INVALID', 'the sign-in was started for another API');
  return pending;
}

/** What openid-client's failure means for the browser, as a code. */
function callbackFailure(err: unknown): CohortError {
  if (err instanceof CohortError) return err;
  const e = err as { name?: string; code?: string; error?: string; message?: string };
  const message = e.message ?? String(err);
  let code: ErrorCode;
  if (e.name === 'AuthorizationResponseError') code = 'LOGIN_DENIED_BY_PROVIDER';
  else if (e.name === 'ResponseBodyError') code = 'LOGIN_CODE_REFUSED';
  else if (e.name === 'TypeError' || e.name === 'AbortError' || e.name === 'TimeoutError' || e.code === 'OAUTH_RESPONSE_IS_NOT_JSON' || e.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || e.code === 'OAUTH_HTTP_REQUEST_FORBIDDEN') code = 'LOGIN_PROVIDER_UNAVAILABLE';
  else code = 'LOGIN_ID_TOKEN_INVALID';
  return new CohortError(code, `sign-in refused: ${message}${e.error ? ` (${e.error})` : ''}`);
}

/** Step 2: the callback. */
export async function finishSignIn(api: CompiledApi & { login: LoginDefinition }, req: WebRequest, ctx: SignInContext): Promise<WebAnswer> {
  const q = req.url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  const pending = await takePending(api, params.get('state') ?? undefined, req, ctx.provider);
  let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
  let claims: client.IDToken;
  try {
    const config = await ctx.parties.configuration(api.login);
    const current = new URL(pending.redirectUri);
    for (const [k, v] of params) current.searchParams.append(k, v);
    tokens = await client.authorizationCodeGrant(config, current, {
      pkceCodeVerifier: pending.verifier,
      expectedNonce: pending.nonce,
      expectedState: params.get('state')!,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims();
    if (idClaims === undefined) throw new CohortError('LOGIN_ID_TOKEN_INVALID', 'the provider returned no ID token');
    claims = idClaims;
  } catch (err) {
    throw callbackFailure(err);
  }

  const settings = ctx.settings;
  const attributes: Record<string, unknown> = {};
  for (const name of api.login.claims ?? []) if (claims[name] !== undefined) attributes[name] = claims[name];
  const login: LoginAttribute = { api: api.id, issuer: claims.iss, ...(typeof claims.sid === 'string' ? { sid: claims.sid } : {}) };
  attributes[LOGIN_ATTRIBUTE] = login;
  const maxLifetimeMs = settings.sessionMaxLifetimeSeconds * 1000;
  const session = await ctx.provider.sessions.create({ subject: claims.sub, attributes, idleTimeoutMs: settings.sessionIdleTimeoutSeconds * 1000, maxLifetimeMs });
  const now = ctx.clock.now();
  const stored: ProviderTokens = {
    ...(tokens.access_token ? { accessToken: tokens.access_token } : {}),
    ...(tokens.id_token ? { idToken: tokens.id_token } : {}),
    ...(tokens.expires_in !== undefined ? { accessTokenExpiresAt: now + tokens.expires_in * 1000 } : {}),
  };
  await ctx.provider.tokens.put(providerTokensKey(session.id), stored, maxLifetimeMs);
  if (login.sid !== undefined) await rememberSid(ctx.provider, login.issuer, login.sid, session.id, session.createdAt + maxLifetimeMs, now);
  ctx.log.info({ api: api.id, subject: claims.sub, sessionId: session.id }, 'web sign-in: session created');
  return {
    status: 302,
    reason: 'ACCESS_ALLOWED',
    headers: {
      location: safeReturnPath(pending.returnTo, cookiePath(api)),
      'cache-control': 'no-store',
      'set-cookie': [
        setCookie(api.sessionCookie, session.id, { path: '/', secure: req.secure }),
        clearCookie(LOGIN_COOKIE, { path: cookiePath(api), secure: req.secure }),
      ],
    },
  };
}

/** The provider's tokens of a signed-in session (token cache). */
export interface ProviderTokens {
  accessToken?: string;
  idToken?: string;
  accessTokenExpiresAt?: number;
}

export function providerTokensKey(sessionId: string): string {
  return `oidc:tokens:${sessionId}`;
}

/** Step 3: logout. */
export async function signOut(api: CompiledApi & { login: LoginDefinition }, req: WebRequest, ctx: SignInContext): Promise<WebAnswer> {
  const id = cookie(req.headers, api.sessionCookie);
  let idToken: string | undefined;
  if (id !== undefined && id.length > 0 && id.length <= 512) {
    idToken = ((await ctx.provider.tokens.get(providerTokensKey(id))) as ProviderTokens | undefined)?.idToken;
    await ctx.provider.sessions.delete(id);
    await ctx.provider.tokens.delete(providerTokensKey(id));
    ctx.log.info({ api: api.id, sessionId: id }, 'web sign-in: logged out');
  }
  const back = safeReturnPath(api.login.postLogoutRedirect, cookiePath(api));
  let location = back;
  try {
    const config = await ctx.parties.configuration(api.login);
    if (config.serverMetadata().end_session_endpoint !== undefined) {
      location = client.buildEndSessionUrl(config, {
        post_logout_redirect_uri: `${origin(req)}${back}`,
        ...(idToken !== undefined ? { id_token_hint: idToken } : {}),
      }).href;
    }
  } catch (err) {
    // The Cohort session is gone whatever the provider does; its own session stays.
    ctx.log.warn({ api: api.id, err }, 'web sign-in: the provider\'s end-session endpoint is not known; logged out of Cohort only');
  }
  return { status: 302, reason: 'ACCESS_ALLOWED', headers: { location, 'cache-control': 'no-store', 'set-cookie': clearCookie(api.sessionCookie, { path: '/', secure: req.secure }) } };
}

/**
 * Front-channel logout: the provider loads `<prefix>/_cohort/frontchannel-logout?iss=…&sid=…`
 * in a hidden frame of its logout page. A cross-site frame carries no SameSite=Lax cookie, so
 * the request names the provider session itself: `iss` must be this API's issuer and `sid` a
 * provider session that signed Cohort sessions in; those sessions are deleted. (A `sid` is an
 * unguessable value the provider hands only to its clients; the worst a forged request can
 * do is end a session whose `sid` it knows.)
 */
export async function frontchannelLogout(api: CompiledApi & { login: LoginDefinition }, req: WebRequest, ctx: SignInContext): Promise<WebAnswer> {
  const q = req.url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  const iss = params.get('iss');
  const sid = params.get('sid');
  if (iss !== api.login.issuer || sid === null || sid.length === 0 || sid.length > 512) throw new CohortError('LOGOUT_TOKEN_INVALID', 'front-channel logout needs this API\'s issuer as iss and a sid');
  let revoked = 0;
  for (const id of await sessionsOfSid(ctx.provider, iss, sid)) {
    if (await ctx.provider.sessions.delete(id)) revoked += 1;
    await ctx.provider.tokens.delete(providerTokensKey(id));
  }
  ctx.log.info({ api: api.id, issuer: iss, sid, revoked }, 'front-channel logout: sessions revoked');
  return { status: 200, reason: 'ACCESS_ALLOWED', headers: { 'cache-control': 'no-store', 'content-type': 'text/html; charset=utf-8' }, html: '<!DOCTYPE html><title>Signed out</title>' };
}

/** Runs a login route; errors become coded answers. */
export async function serveLoginRoute(route: LoginRoute, api: CompiledApi & { login: LoginDefinition }, req: WebRequest, ctx: SignInContext): Promise<WebAnswer> {
  try {
    if (route === 'frontchannel-logout') return await frontchannelLogout(api, req, ctx);
    return route === 'callback' ? await finishSignIn(api, req, ctx) : await signOut(api, req, ctx);
  } catch (err) {
    return errorAnswer(err, ctx.log, api.id);
  }
}

export async function serveSignInStart(api: CompiledApi & { login: LoginDefinition }, req: WebRequest, ctx: SignInContext): Promise<WebAnswer> {
  try {
    return await startSignIn(api, req, ctx);
  } catch (err) {
    return errorAnswer(err, ctx.log, api.id);
  }
}

function errorAnswer(err: unknown, log: Logger, api: string): WebAnswer {
  const e = err instanceof CohortError ? err : new CohortError('STATE_UNAVAILABLE', (err as Error).message);
  log.warn({ api, code: e.code, err: e.message }, 'web sign-in refused');
  return { status: e.status, reason: e.code, headers: { 'cache-control': 'no-store' }, body: { error: { code: e.code, message: e.message } } };
}
