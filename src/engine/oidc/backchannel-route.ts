/**
 * `POST /runtime/v1/oidc/backchannel-logout` on the runtime port: where OpenID providers post
 * logout tokens (form field `logout_token`). No API key: the provider has none; the signed
 * logout token is the credential (backchannel-logout.ts checks it). Answers 200 with the number
 * of sessions ended, 400 with LOGOUT_TOKEN_INVALID or LOGOUT_TOKEN_REPLAYED, never cached.
 */
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../../core/clock.js';
import { CohortError, ERROR_CODES, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { StateProvider } from '../../state/services.js';
import type { RuntimeSettings } from '../runtime-settings.js';
import { backchannelLogout } from './backchannel-logout.js';
import { RelyingParties } from './relying-party.js';

export const BACKCHANNEL_LOGOUT_PATH = '/runtime/v1/oidc/backchannel-logout';
/** A logout token is a few kilobytes at most. */
const BODY_BYTES = 32 * 1024;
const ERRORS: readonly ErrorCode[] = ['LOGOUT_TOKEN_INVALID', 'LOGOUT_TOKEN_REPLAYED', 'HTTP_BAD_REQUEST', 'HTTP_BODY_TOO_LARGE', 'LOGIN_PROVIDER_UNAVAILABLE', 'STATE_UNAVAILABLE', 'STATE_NOT_REPLICATED', 'HTTP_INTERNAL'];

export interface BackchannelRouteOptions {
  provider: StateProvider;
  settings(): RuntimeSettings;
  clock: Clock;
  log: Logger;
}

export function registerBackchannelLogout(app: FastifyInstance, o: BackchannelRouteOptions): void {
  const parties = new RelyingParties(o.clock);
  app.register(async (route) => {
    route.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: BODY_BYTES }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    route.post<{ Body: { logout_token: string } }>(BACKCHANNEL_LOGOUT_PATH, {
      bodyLimit: BODY_BYTES,
      schema: {
        tags: ['web sign-in'],
        summary: 'OpenID Connect back-channel logout: a verified logout token revokes every session of its sid (or sub) on every engine',
        security: [],
        consumes: ['application/x-www-form-urlencoded'],
        body: { type: 'object', required: ['logout_token'], properties: { logout_token: { type: 'string', minLength: 1, maxLength: BODY_BYTES } } },
        response: {
          200: { description: 'The token was valid; the sessions it names are revoked.', type: 'object', required: ['revoked'], properties: { revoked: { type: 'integer', description: 'Sessions ended.' } } },
          ...Object.fromEntries([400, 413, 500, 502, 503].map((status) => {
            const codes = ERRORS.filter((c) => ERROR_CODES[c].status === status);
            return [status, { description: codes.map((c) => `${c}: ${ERROR_CODES[c].summary}`).join(' '), type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', enum: codes }, message: { type: 'string' } } } } }];
          })),
        },
      },
    }, async (request, reply) => {
      reply.header('cache-control', 'no-store');
      try {
        return await backchannelLogout(request.body.logout_token, { provider: o.provider, apis: o.settings().access.apis, parties, clock: o.clock, log: o.log });
      } catch (err) {
        if (err instanceof CohortError) o.log.warn({ code: err.code, err: err.message }, 'back-channel logout refused');
        throw err;
      }
    });
  });
}
