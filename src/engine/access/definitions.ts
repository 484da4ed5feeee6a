/**
 * API definitions of the replicated `apis` section, compiled once per applied configuration
 * into what decisions read on every request: defaults filled in, deny lists split by kind
 * (addresses into a BlockList), JWT key sets built.
 */
import type { BlockList } from 'node:net';
import type { JWK } from 'jose';
import { addressBlockList } from './address.js';
import { jwtVerifierFor, type JwtSettings, type JwtVerifier } from './jwt.js';

export type CredentialKind = 'session' | 'apiKey' | 'jwt';

/** What a rate limit counts by: the client's address, the credential's subject, or its API key. */
export type RateLimitBy = 'ip' | 'subject' | 'apiKey';

/** One API as the `apis` section holds it (the section's schema has the rules). */
export interface ApiDefinition {
  id: string;
  pathPrefix: string;
  hosts?: string[];
  methods?: string[];
  publicPaths?: string[];
  credentials?: CredentialKind[];
  sessionCookie?: string;
  jwt?: { issuer?: string; audiences?: string[]; jwksUrl?: string; keys?: JWK[]; algorithms?: string[]; clockToleranceSeconds?: number };
  checkRevocation?: boolean;
  singleUseTokens?: boolean;
  rateLimit?: { policy: string; by: RateLimitBy };
  lockout?: { by: 'ip' | 'subject' };
  denyList?: string[];
  enforce?: boolean;
  identityHeaders?: Record<string, string>;
  upstream?: string;
  stripPrefix?: boolean;
  timeoutMs?: number;
  onStateUnavailable?: 'deny' | 'allow';
  login?: LoginDefinition;
  upstreamToken?: UpstreamTokenDefinition;
}

/** Web sign-in with OpenID Connect (docs/web-sign-in.md). */
export interface LoginDefinition {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Requested scopes; `openid` is always requested. */
  scopes?: string[];
  /** ID-token claims copied into the session's attributes. */
  claims?: string[];
  /** Where `/_cohort/logout` sends the browser at the end (a path on the same origin); default the API's prefix. */
  postLogoutRedirect?: string;
}

/** Token mediation: a token for the upstream from a token endpoint. */
export interface UpstreamTokenDefinition {
  tokenEndpoint: string;
  clientId: string;
  clientSecret: string;
  grant: 'token-exchange' | 'client-credentials';
  audience?: string;
  scope?: string;
}

export const DEFAULT_SESSION_COOKIE = 'cohort_session';
export const DEFAULT_IDENTITY_HEADERS: Record<string, string> = { 'X-Cohort-Subject': 'subject', 'X-Cohort-Api': 'api', 'X-Cohort-Decision-Id': 'decisionId' };
/** Inline mode: how long an upstream may take when the API sets no `timeoutMs`. */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
/** Without a list of algorithms, the two most common asymmetric ones. */
export const DEFAULT_JWT_ALGORITHMS = ['RS256', 'ES256'];

export interface CompiledApi {
  id: string;
  pathPrefix: string;
  /** Lower-case host names (with or without port); empty: any. */
  hosts: string[];
  /** Upper-case methods; empty: any. */
  methods: string[];
  publicPaths: string[];
  credentials: CredentialKind[];
  sessionCookie: string;
  jwt: JwtVerifier | undefined;
  checkRevocation: boolean;
  singleUseTokens: boolean;
  rateLimit: ApiDefinition['rateLimit'];
  lockout: ApiDefinition['lockout'];
  denyAddresses: BlockList | undefined;
  denySubjects: Set<string>;
  denyApiKeys: Set<string>;
  denySessions: Set<string>;
  enforce: boolean;
  identityHeaders: Record<string, string>;
  /** `identityHeaders` as a list read on every allow: no object walk, no source parsed per decision. */
  identitySources: readonly IdentitySource[];
  /** The identity headers' names, lower-case: the inline proxy drops client-sent headers of these names. */
  identityHeaderNames: Set<string>;
  failOpen: boolean;
  /** Inline mode: where allowed requests go (`http(s)://host[:port][/base path]`); undefined: nowhere. */
  upstream: string | undefined;
  /** Inline mode: the API's path prefix is removed from the path forwarded to the upstream. */
  stripPrefix: boolean;
  /** Inline mode: how long the upstream may take to answer (headers, then between body chunks). */
  timeoutMs: number;
  /** Web sign-in, when the API has `login`. */
  login: LoginDefinition | undefined;
  /** Token mediation, when the API has `upstreamToken`. */
  upstreamToken: UpstreamTokenDefinition | undefined;
  /** The definition could not be compiled (its error is logged): every request it matches is denied. */
  broken?: boolean;
}

/** One identity header: its name as configured and what its value is (`claim` for `claim:<name>`). */
export interface IdentitySource {
  name: string;
  source: 'subject' | 'sessionId' | 'apiKeyId' | 'api' | 'decisionId' | 'claim';
  claim?: string;
}

function identitySources(id: string, headers: Record<string, string>): IdentitySource[] {
  return Object.entries(headers).map(([name, source]): IdentitySource => {
    if (source.startsWith('claim:')) return { name, source: 'claim', claim: source.slice('claim:'.length) };
    if (source === 'subject' || source === 'sessionId' || source === 'apiKeyId' || source === 'api' || source === 'decisionId') return { name, source };
    throw new Error(`api ${id}: identity header ${name} takes its value from ${source}, which is none of subject, sessionId, apiKeyId, api, decisionId or claim:<name>`);
  });
}

export function compileApi(def: ApiDefinition): CompiledApi {
  const deny = { ip: [] as string[], subject: [] as string[], apiKey: [] as string[], session: [] as string[] };
  for (const entry of def.denyList ?? []) {
    const colon = entry.indexOf(':');
    const kind = entry.slice(0, colon) as keyof typeof deny;
    if (!(kind in deny)) throw new Error(`api ${def.id}: deny list entry ${entry} is not ip:, subject:, apiKey: or session:`);
    deny[kind].push(entry.slice(colon + 1));
  }
  const credentials = def.credentials ?? ['session'];
  let jwt: JwtVerifier | undefined;
  if (credentials.includes('jwt')) {
    if (!def.jwt || (!def.jwt.jwksUrl && !def.jwt.keys)) throw new Error(`api ${def.id}: credential jwt needs jwt.jwksUrl or jwt.keys`);
    const settings: JwtSettings = {
      ...(def.jwt.issuer !== undefined ? { issuer: def.jwt.issuer } : {}),
      ...(def.jwt.audiences !== undefined ? { audiences: def.jwt.audiences } : {}),
      ...(def.jwt.jwksUrl !== undefined ? { jwksUrl: def.jwt.jwksUrl } : {}),
      ...(def.jwt.keys !== undefined ? { keys: def.jwt.keys } : {}),
      algorithms: def.jwt.algorithms ?? DEFAULT_JWT_ALGORITHMS,
      clockToleranceSeconds: def.jwt.clockToleranceSeconds ?? 0,
    };
    jwt = jwtVerifierFor(settings);
  }
  const identityHeaders = def.identityHeaders ?? DEFAULT_IDENTITY_HEADERS;
  return {
    id: def.id,
    pathPrefix: def.pathPrefix,
    hosts: (def.hosts ?? []).map((h) => h.toLowerCase()),
    methods: (def.methods ?? []).map((m) => m.toUpperCase()),
    publicPaths: def.publicPaths ?? [],
    credentials,
    sessionCookie: def.sessionCookie ?? DEFAULT_SESSION_COOKIE,
    jwt,
    checkRevocation: def.checkRevocation ?? true,
    singleUseTokens: def.singleUseTokens ?? false,
    rateLimit: def.rateLimit,
    lockout: def.lockout,
    denyAddresses: addressBlockList(deny.ip),
    denySubjects: new Set(deny.subject),
    denyApiKeys: new Set(deny.apiKey),
    denySessions: new Set(deny.session),
    enforce: def.enforce ?? true,
    identityHeaders,
    identitySources: identitySources(def.id, identityHeaders),
    identityHeaderNames: new Set(Object.keys(identityHeaders).map((n) => n.toLowerCase())),
    failOpen: def.onStateUnavailable === 'allow',
    upstream: def.upstream === undefined ? undefined : upstreamBase(def.id, def.upstream),
    stripPrefix: def.stripPrefix ?? false,
    timeoutMs: def.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    login: def.login,
    upstreamToken: def.upstreamToken,
  };
}

/** The upstream URL without a trailing slash (paths are appended to it); a URL that does not parse breaks the API. */
function upstreamBase(id: string, upstream: string): string {
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    throw new Error(`api ${id}: upstream ${upstream} is not a URL`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') throw new Error(`api ${id}: upstream ${upstream} may not carry a query, a fragment or credentials`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** What decisions read: the compiled APIs, the unmatched-request rule and the client keys. */
export interface AccessDefinitions {
  apis: CompiledApi[];
  allowUnmatched: boolean;
  /** Console-issued keys of scope `client`, by SHA-256 (hex). */
  clientKeys: Map<string, { id: string }>;
}

/**
 * Compiles the `apis` section. An API that cannot be compiled (a deny-list address that is
 * none, a JWT credential without keys) is kept as one that denies every request it matches
 * with ACCESS_UNAVAILABLE, rather than dropped: dropping it would let its requests fall
 * through to a shorter prefix or the unmatched rule.
 */
export function compileApis(section: unknown, options: { allowUnmatched: boolean; clientKeys: Map<string, { id: string }> }): AccessDefinitions & { errors: string[] } {
  const defs = ((section ?? { apis: [] }) as { apis: ApiDefinition[] }).apis;
  const errors: string[] = [];
  const apis = defs.map((def) => {
    try {
      return compileApi(def);
    } catch (err) {
      errors.push((err as Error).message);
      return { ...compileApi({ id: def.id, pathPrefix: def.pathPrefix, ...(def.hosts ? { hosts: def.hosts } : {}), ...(def.methods ? { methods: def.methods } : {}) }), broken: true, failOpen: false };
    }
  });
  return { apis, allowUnmatched: options.allowUnmatched, clientKeys: options.clientKeys, errors };
}
