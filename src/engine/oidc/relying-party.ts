/**
 * The OpenID Connect relying parties of the APIs with `login`: one openid-client
 * `Configuration` per (issuer, client), made by discovery and kept for an hour, so a sign-in
 * costs no discovery round trip; the provider's key set is cached by openid-client (ID tokens)
 * and by jose's remote key set (logout tokens), each refetched only for an unknown key id.
 *
 * Plain http is allowed only for a loopback issuer (a provider on the same host, as in
 * development and tests): the `apis` section refuses any other http issuer, and this file
 * checks again, so no configuration can make an engine talk OpenID Connect in clear text over
 * a network.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import * as client from 'openid-client';
import type { Clock } from '../../core/clock.js';
import { CohortError } from '../../core/errors.js';
import { isHttpsOrLoopback } from '../../policy/config-sections.js';
import type { LoginDefinition } from '../access/definitions.js';

/** How long a discovered configuration is used before it is fetched again. */
const DISCOVERY_TTL_MS = 3600_000;
/** A provider that does not answer within this is unavailable (discovery, token endpoint). */
export const PROVIDER_TIMEOUT_SECONDS = 10;

interface Cached {
  at: number;
  config: Promise<client.Configuration>;
}

export class RelyingParties {
  private readonly configs = new Map<string, Cached>();
  private readonly keySets = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly clock: Clock) {}

  /** The client of `login`, discovered once an hour at most; a failed discovery is not kept. */
  configuration(login: LoginDefinition): Promise<client.Configuration> {
    const key = `${login.issuer}\n${login.clientId}\n${createHash('sha256').update(login.clientSecret).digest('hex')}`;
    const now = this.clock.now();
    const cached = this.configs.get(key);
    if (cached && now - cached.at < DISCOVERY_TTL_MS) return cached.config;
    if (!isHttpsOrLoopback(login.issuer)) return Promise.reject(new CohortError('LOGIN_PROVIDER_UNAVAILABLE', `issuer ${login.issuer} is neither https nor on a loopback address`));
    const insecure = new URL(login.issuer).protocol === 'http:';
    const config = client.discovery(new URL(login.issuer), login.clientId, { client_secret: login.clientSecret }, client.ClientSecretBasic(login.clientSecret), {
      timeout: PROVIDER_TIMEOUT_SECONDS,
      ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
    }).then((c) => {
      c.timeout = PROVIDER_TIMEOUT_SECONDS;
      return c;
    });
    const entry = { at: now, config };
    this.configs.set(key, entry);
    config.catch(() => {
      if (this.configs.get(key) === entry) this.configs.delete(key);
    });
    return config.catch((err: unknown) => {
      throw new CohortError('LOGIN_PROVIDER_UNAVAILABLE', `discovery at ${login.issuer} failed: ${(err as Error).message}`);
    });
  }

  /** The provider's key set (its `jwks_uri`), for logout tokens. */
  async keySet(login: LoginDefinition): Promise<JWTVerifyGetKey> {
    const config = await this.configuration(login);
    const uri = config.serverMetadata().jwks_uri;
    if (uri === undefined) throw new CohortError('LOGIN_PROVIDER_UNAVAILABLE', `the provider ${login.issuer} publishes no jwks_uri`);
    let set = this.keySets.get(uri);
    if (!set) {
      set = createRemoteJWKSet(new URL(uri), { timeoutDuration: PROVIDER_TIMEOUT_SECONDS * 1000 });
      this.keySets.set(uri, set);
    }
    return set;
  }
}
