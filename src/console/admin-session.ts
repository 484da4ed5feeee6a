/**
 * How a browser holds its admin session: an HttpOnly cookie plus a CSRF header.
 *
 * Why a cookie: the web console's live page uses EventSource, which cannot set an
 * Authorization header, and a token kept in localStorage would be readable by any script
 * that ever ran in the page. An HttpOnly cookie is never readable by scripts.
 *
 * Why a CSRF header as well: a browser attaches the cookie to requests other sites make it
 * send. The cookie is `SameSite=Strict` (no cross-site request carries it), and every
 * request that changes something must also carry `X-Cohort-CSRF` with a value derived from
 * the token: another site can neither read that value nor set a custom header on a
 * cross-origin request without a CORS preflight, which the admin API never grants.
 *
 * The CSRF value is an HMAC of a fixed label keyed with the token, so it needs no state of
 * its own (it lives and dies with the token), and knowing it tells nothing about the token.
 *
 * CLI and API clients keep using `Authorization: Bearer <token>`; a bearer header wins over
 * a cookie and needs no CSRF header (a browser never adds one by itself).
 */
import { createHmac } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { bearerToken } from '../http/bearer-auth.js';
import { constantTimeEqual } from '../core/constant-time.js';
import { CohortError } from '../core/errors.js';

export const SESSION_COOKIE = 'cohort_admin';
export const CSRF_HEADER = 'x-cohort-csrf';
/** The cookie goes only to the API: never to the static files. */
const COOKIE_PATH = '/admin/v1';

export interface AdminCredential {
  token: string;
  via: 'bearer' | 'cookie';
}

/** The CSRF value that goes with `token`. */
export function csrfTokenFor(token: string): string {
  return createHmac('sha256', token).update('cohort/v1/admin-csrf').digest('base64url');
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

/** The request's admin token: the bearer header, else the session cookie. */
export function adminCredential(request: FastifyRequest): AdminCredential | undefined {
  const bearer = bearerToken(request);
  if (bearer !== undefined) return { token: bearer, via: 'bearer' };
  const cookie = cookieValue(request.headers.cookie, SESSION_COOKIE);
  return cookie === undefined ? undefined : { token: cookie, via: 'cookie' };
}

/**
 * Refuses (403 AUTH_CSRF_FAILED) a cookie-authenticated request that may change something
 * and lacks the right CSRF header. GET and HEAD change nothing and pass.
 */
export function checkCsrf(request: FastifyRequest, credential: AdminCredential): void {
  if (credential.via !== 'cookie' || request.method === 'GET' || request.method === 'HEAD') return;
  const sent = request.headers[CSRF_HEADER];
  if (typeof sent !== 'string' || !constantTimeEqual(Buffer.from(sent), Buffer.from(csrfTokenFor(credential.token)))) {
    throw new CohortError('AUTH_CSRF_FAILED', `a request authenticated by the session cookie must carry the ${CSRF_HEADER} header given at sign-in`);
  }
}

/**
 * The Set-Cookie value that holds `token`: a browser-session cookie (gone when the browser
 * closes); the token's own expiry is enforced by the console whatever the cookie says.
 */
export function sessionCookie(token: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; Path=${COOKIE_PATH}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** The Set-Cookie value that removes the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=${COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}
