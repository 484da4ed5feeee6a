/**
 * Token mediation (`upstreamToken`): the inline proxy attaches a token of the upstream's own to
 * an allowed request, obtained from a token endpoint with client credentials or by token
 * exchange (RFC 8693) of the signed-in user's access token, and shared by every engine through
 * the token cache.
 *
 * One fetch per key (API, audience and, for token exchange, subject) while the token lives:
 * - on one engine, concurrent requests for a key share one promise (single flight);
 * - across engines, the engine that wins a lease (replay prevention: insert-if-absent, once
 *   cluster-wide) fetches and stores; the others poll the token cache until the token is
 *   there, and fetch themselves only when the lease holder has not stored one in time or
 *   reported that its fetch failed.
 * A token is used until `REFRESH_MARGIN` before it expires; the cache entry outlives that a
 *   little, so engines that see the same stale entry compete for the same lease.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { CohortError } from '../../core/errors.js';
import type { StateProvider } from '../../state/services.js';
import type { CompiledApi, UpstreamTokenDefinition } from '../access/definitions.js';
import type { Identity } from '../access/credentials.js';
import { providerTokensKey, type ProviderTokens } from './sign-in.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** A token without expires_in is kept this long. */
const DEFAULT_LIFETIME_MS = 300_000;
/** How long a lease holder has to store the token before the others fetch for themselves. */
const LEASE_MS = 5_000;
const POLL_MS = 25;
/** The cache entry stays this long after the token expired: the marker the next lease is named after. */
const STALE_KEEP_MS = 60_000;
const FETCH_TIMEOUT_MS = 10_000;

/** When to stop using a token that expires `lifetimeMs` after it was fetched: 10% of its life early, at most 30 s (pure). */
export function refreshAt(fetchedAt: number, lifetimeMs: number): number {
  return fetchedAt + lifetimeMs - Math.min(30_000, Math.floor(lifetimeMs / 10));
}

interface CachedToken {
  token: string;
  fetchedAt: number;
  /** Used until then. */
  refreshAt: number;
}

export type TokenFetcher = (url: string, init: { method: 'POST'; headers: Record<string, string>; body: string; signal: AbortSignal }) => Promise<{ status: number; json(): Promise<unknown> }>;

export class UpstreamTokens {
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(
    private readonly provider: StateProvider,
    private readonly clock: Clock,
    private readonly fetcher: TokenFetcher = (url, init) => fetch(url, init),
  ) {}

  /** The token to attach for a request of `identity` to `api`. */
  async tokenFor(api: CompiledApi & { upstreamToken: UpstreamTokenDefinition }, identity: Identity | undefined): Promise<string> {
    const t = api.upstreamToken;
    const subject = t.grant === 'token-exchange' ? identity?.subject : undefined;
    if (t.grant === 'token-exchange' && (subject === undefined || identity?.sessionId === undefined)) throw new CohortError('UPSTREAM_TOKEN_FAILED', 'token exchange needs a signed-in session');
    const key = `upstream:${createHash('sha256').update(`${api.id}\n${t.tokenEndpoint}\n${t.grant}\n${t.audience ?? ''}\n${t.scope ?? ''}\n${subject ?? ''}`).digest('base64url')}`;
    const cached = (await this.provider.tokens.get(key)) as CachedToken | undefined;
    if (cached && cached.refreshAt > this.clock.now()) return cached.token;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchShared(key, cached, t, identity).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async fetchShared(key: string, stale: CachedToken | undefined, t: UpstreamTokenDefinition, identity: Identity | undefined): Promise<string> {
    const generation = stale ? String(stale.fetchedAt) : `none:${Math.floor(this.clock.now() / LEASE_MS)}`;
    const failedKey = `${key}:failed:${generation}`;
    const leased = await this.provider.replay.checkAndInsert(`${key}:lease:${generation}`, LEASE_MS);
    if (!leased) {
      const deadline = this.clock.now() + LEASE_MS;
      while (this.clock.now() < deadline) {
        await new Promise<void>((resolve) => this.clock.setTimeout(resolve, POLL_MS));
        const now = (await this.provider.tokens.get(key)) as CachedToken | undefined;
        if (now && now.refreshAt > this.clock.now()) return now.token;
        // The lease holder's fetch failed: try for ourselves rather than wait out the lease.
        if ((await this.provider.tokens.get(failedKey)) !== undefined) break;
      }
    }
    const fetchedAt = this.clock.now();
    let fetched: { token: string; lifetimeMs: number };
    try {
      fetched = await this.fetchToken(t, identity);
    } catch (err) {
      await this.provider.tokens.put(failedKey, true, LEASE_MS).catch(() => undefined);
      throw err;
    }
    const entry: CachedToken = { token: fetched.token, fetchedAt, refreshAt: refreshAt(fetchedAt, fetched.lifetimeMs) };
    await this.provider.tokens.put(key, entry, fetched.lifetimeMs + STALE_KEEP_MS);
    return fetched.token;
  }

  private async fetchToken(t: UpstreamTokenDefinition, identity: Identity | undefined): Promise<{ token: string; lifetimeMs: number }> {
    const form = new URLSearchParams();
    if (t.grant === 'client-credentials') form.set('grant_type', 'client_credentials');
    else {
      const provider = (await this.provider.tokens.get(providerTokensKey(identity!.sessionId!))) as ProviderTokens | undefined;
      if (provider?.accessToken === undefined) throw new CohortError('UPSTREAM_TOKEN_FAILED', 'the session holds no access token to exchange (not signed in through login, or logged out)');
      form.set('grant_type', TOKEN_EXCHANGE);
      form.set('subject_token', provider.accessToken);
      form.set('subject_token_type', ACCESS_TOKEN_TYPE);
    }
    if (t.audience !== undefined) form.set('audience', t.audience);
    if (t.scope !== undefined) form.set('scope', t.scope);
    // client_secret_basic: id and secret form-encoded, then base64 (RFC 6749 2.3.1).
    const basic = Buffer.from(`${encodeURIComponent(t.clientId)}:${encodeURIComponent(t.clientSecret)}`).toString('base64');
    let status: number;
    let body: unknown;
    try {
      const r = await this.fetcher(t.tokenEndpoint, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      status = r.status;
      body = await r.json().catch(() => undefined);
    } catch (err) {
      throw new CohortError('UPSTREAM_TOKEN_FAILED', `the token endpoint ${t.tokenEndpoint} could not be reached: ${(err as Error).message}`);
    }
    const b = (body ?? {}) as { access_token?: unknown; expires_in?: unknown; error?: unknown };
    if (status !== 200 || typeof b.access_token !== 'string' || b.access_token.length === 0) {
      throw new CohortError('UPSTREAM_TOKEN_FAILED', `the token endpoint ${t.tokenEndpoint} answered ${status}${typeof b.error === 'string' ? ` (${b.error})` : ''} without an access token`);
    }
    const lifetimeMs = typeof b.expires_in === 'number' && b.expires_in > 0 ? b.expires_in * 1000 : DEFAULT_LIFETIME_MS;
    return { token: b.access_token, lifetimeMs };
  }
}
