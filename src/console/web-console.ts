/**
 * The web console on the admin port: the single-page app built from web/ (scripts/build.mjs
 * writes it to dist/web), served by @fastify/static, and the security headers of every
 * answer the admin port gives.
 *
 * - index.html at `/` and at every page path (web-routes.ts), `Cache-Control: no-cache`, so a
 *   new build is picked up at the next load; assets under /assets/ have content-hashed names
 *   and are cached for a year (`immutable`).
 * - Headers on every answer (pages, assets, JSON): a CSP that allows scripts, styles and
 *   connections from the console's own origin only (no inline script or style: the build
 *   emits none), `frame-ancestors 'none'` (and X-Frame-Options for older browsers), nosniff,
 *   `Referrer-Policy: no-referrer`, and `Cross-Origin-Opener-Policy: same-origin`.
 * - Without a build (dist/web/index.html missing) the pages answer 503 CONSOLE_WEB_NOT_BUILT
 *   and the JSON API works as before.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { CohortError } from '../core/errors.js';
import { WEB_ASSETS_PREFIX, WEB_PAGES } from './web-routes.js';

/** dist/web, next to dist/src where this file runs from. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';
export const PAGE_CACHE_CONTROL = 'no-cache';

/** Sets the security headers on every answer of `app` (hijacked answers set them themselves). */
export function addSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(name)) reply.header(name, value);
    return payload;
  });
}

export async function registerWebConsole(app: FastifyInstance, root: string = DEFAULT_WEB_ROOT): Promise<void> {
  const built = existsSync(join(root, 'index.html'));
  if (built) {
    await app.register(fastifyStatic, {
      root: join(root, 'assets'),
      prefix: WEB_ASSETS_PREFIX,
      // Only files that exist at start are routes; anything else under /assets/ is a JSON 404.
      wildcard: false,
      index: false,
      cacheControl: false,
      setHeaders: (res) => res.setHeader('cache-control', ASSET_CACHE_CONTROL),
    });
  }
  for (const path of Object.keys(WEB_PAGES)) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) => {
      if (!built || !existsSync(join(root, 'index.html'))) {
        throw new CohortError('CONSOLE_WEB_NOT_BUILT', `the web console is not built (no ${join(root, 'index.html')}); run npm run build`);
      }
      return reply.header('cache-control', PAGE_CACHE_CONTROL).type('text/html; charset=utf-8').sendFile('index.html', root);
    });
  }
}
