import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CohortError } from '../core/errors.js';
import { parsePublicKey } from '../policy/console-authority.js';
import { parseConfigText, type RawSections } from './ini-file.js';
import { deobfuscate, isObfuscated } from './obfuscation.js';
import {
  KEYS,
  MAX_SECRET_LENGTH,
  MIN_ADMIN_PASSWORD_LENGTH,
  SECTIONS,
  envVarName,
  findKey,
  type Architecture,
  type KeyDef,
  type LogFormat,
  type DecisionLog,
  type LogLevel,
  type Mode,
  type Profile,
  type Role,
  type TimingField,
  type StateProviderName,
  isWildcardHost,
  TIMING_OVERRIDES,
  SCOPED_SERVICES,
  type ScopedService,
  VALUE_CAPS,
  type ValueCaps,
  type TlsListener,
  type TlsVersion,
} from './schema.js';
import { KNOWN_DEFAULT_SECRETS, Secret } from './secret.js';
import { InvalidValue, splitList, type Address } from './values.js';

/** A node's configuration after parsing, environment overrides, defaults and validation. */
export interface NodeConfig {
  /** Absolute path of the file it came from. */
  file: string;
  node: { id: string; role: Role; mode: Mode; dataDir: string };
  cluster: {
    id: string;
    bind: Address;
    /** The address other nodes dial: `[cluster] advertise`, or the bind address. */
    advertise: Address;
    peers: Address[];
    secretKey: Secret;
    previousSecretKeys: Secret[];
    /** `[cluster] console_public_key`: the console authority engines follow; undefined: pinned at first proven contact. */
    consolePublicKey: KeyObject | undefined;
    profile: Profile;
    /** Membership timings set in the file or environment; the rest come from the profile. */
    timing: Partial<Record<TimingField, number>>;
  };
  http: {
    runtime: Address;
    /** The inline proxy's address (`[http] proxy`): set on every engine in inline mode, undefined otherwise. */
    proxy: Address | undefined;
    /** `[http] trusted_proxies`: addresses and CIDR ranges whose X-Forwarded-For is believed. */
    trustedProxies: string[];
    admin: Address;
    manage: Address;
    bodyLimit: number;
    apiKeys: Secret[];
    /** `[http] metrics`: serve GET /metrics and time HTTP requests. */
    metrics: boolean;
    /** `[http] metrics_token`: the bearer token GET /metrics requires; undefined = none. */
    metricsToken: Secret | undefined;
    /** `[http] drain_seconds` (or the profile's default), in ms: how long a stopping engine keeps serving after readiness turned 503. */
    drainMs: number;
  };
  state: {
    provider: StateProviderName;
    /** The Redis URL (it may hold a password, hence a Secret); undefined unless set. */
    redisUrl: Secret | undefined;
    /** `redis_wait_replicas`; null: by the URL's form (redis-provider.ts `defaultWaitReplicas`). */
    redisWaitReplicas: number | null;
    redisWaitTimeoutMs: number;
    architecture: Architecture;
    replicationFactor: number;
    groupId: string | null;
    /** Services shared by every subcluster (`inter_group`). */
    interGroup: ScopedService[];
    /** `node_index` as set; null when not set (see scopes.ts for the fallback). */
    nodeIndex: number | null;
    /** `preferred_node_indices.<service>`, for the services where it is set. */
    preferredNodeIndices: Partial<Record<ScopedService, number[]>>;
    rpcTimeoutMs: number;
    retrieveMajorityOnly: boolean;
    readLocalOnly: boolean;
    bulkRevocationTimeoutMs: number;
    revocationCap: number;
    /** The runtime API's caps on stored values (`max_*_bytes`), in bytes of serialized JSON. */
    limits: ValueCaps;
  };
  scheduler: { enabled: boolean; checkInIntervalMs: number; checkInOffsetMs: number; instanceTimeoutMs: number; instanceRecoveryTimeoutMs: number; pollIntervalMs: number; runHistory: number };
  console: { pollingDelayMs: number; pushChanges: boolean; adminUser: string; /** `[console] admin_password`: the first admin user's password; undefined: generated. */ adminPassword: Secret | undefined; tokenTtlMs: number; loginMaxFailures: number; loginLockoutMs: number; loginUserMaxFailures: number; loginSourceBurst: number; loginSourcePerMinute: number; loginMaxConcurrent: number };
  /** Repository URL with relative SQLite paths made absolute; `undefined` when not configured for an engine. */
  repository: { url: string | undefined };
  log: { level: LogLevel; format: LogFormat };
  access: { decisionLog: DecisionLog; sessionCacheTtlMs: number; sessionTouchIntervalMs: number; rateLimitAllotment: number; jwtCacheSize: number };
  /** `[tls]`: undefined when no certificate is configured (every listener speaks plain HTTP). */
  tls: TlsSettings | undefined;
  /** Things the operator should hear about that do not stop the node (logged at start). */
  warnings: string[];
}

/** `[tls]` with paths made absolute. */
export interface TlsSettings {
  certFile: string;
  keyFile: string;
  /** Empty when no CA file is configured. */
  caFile: string;
  /** The listeners that serve HTTPS. */
  listeners: TlsListener[];
  /** The HTTPS listeners that require a client certificate issued by `caFile`. */
  clientCertificates: TlsListener[];
  minVersion: TlsVersion;
  reloadIntervalMs: number;
}

type Env = Record<string, string | undefined>;

/** Reads, validates and returns the configuration in `file`; throws CohortError (CONFIG_*). */
export function loadNodeConfig(file: string, env: Env = process.env): NodeConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new CohortError('CONFIG_FILE_UNREADABLE', `${path}: cannot read configuration file: ${reason}`, { file: path });
  }
  return buildNodeConfig(parseConfigText(text, path), path, env);
}

/** Where a value came from, for error messages. */
interface Source {
  value: string;
  origin: string;
}

export function buildNodeConfig(raw: RawSections, file: string, env: Env): NodeConfig {
  for (const [section, keys] of raw) {
    if (!SECTIONS.includes(section)) {
      const line = [...keys.values()][0]?.line;
      throw new CohortError(
        'CONFIG_UNKNOWN_SECTION',
        `${file}: unknown section [${section}]; allowed: ${SECTIONS.map((s) => `[${s}]`).join(' ')}`,
        { file, section, line },
      );
    }
    for (const [key, { line }] of keys) {
      if (!findKey(section, key)) {
        const allowed = KEYS.filter((k) => k.section === section).map((k) => k.key);
        throw new CohortError(
          'CONFIG_UNKNOWN_KEY',
          `${file}:${line}: [${section}] ${key}: unknown key; allowed in [${section}]: ${allowed.join(', ')}`,
          { file, section, key, line },
        );
      }
    }
  }

  const sourceOf = (def: KeyDef): Source | undefined => {
    const fromEnv = env[envVarName(def)];
    if (fromEnv !== undefined) return { value: fromEnv, origin: `${file}: [${def.section}] ${def.key} (from ${envVarName(def)})` };
    const fromFile = raw.get(def.section)?.get(def.key);
    if (fromFile !== undefined) return { value: fromFile.value, origin: `${file}:${fromFile.line}: [${def.section}] ${def.key}` };
    return undefined;
  };

  const invalid = (def: KeyDef, src: Source, reason: string): CohortError => {
    const shown = def.secret ? '(value hidden)' : `"${src.value}"`;
    return new CohortError('CONFIG_INVALID_VALUE', `${src.origin}: ${shown} is invalid: ${reason}; allowed: ${def.allowed}`, {
      file,
      section: def.section,
      key: def.key,
    });
  };

  const values = new Map<string, unknown>();
  for (const def of KEYS) {
    const src = sourceOf(def);
    if (src === undefined || (def.default === undefined && src.value.trim() === '' && !def.secret)) {
      if (def.default === undefined) {
        throw new CohortError(
          'CONFIG_MISSING_KEY',
          `${file}: [${def.section}] ${def.key}: required key is missing (set it in the file or in ${envVarName(def)}); allowed: ${def.allowed}`,
          { file, section: def.section, key: def.key },
        );
      }
      continue; // defaults are applied below, where some depend on other keys
    }
    try {
      values.set(`${def.section}.${def.key}`, def.parse(src.value));
    } catch (err) {
      if (err instanceof InvalidValue) throw invalid(def, src, err.message);
      throw err;
    }
  }

  const get = <T>(section: string, key: string): T => {
    if (values.has(`${section}.${key}`)) return values.get(`${section}.${key}`) as T;
    const def = findKey(section, key)!;
    return def.parse(def.default!) as T;
  };

  const warnings: string[] = [];
  const secretDef = findKey('cluster', 'secret_key')!;
  const secretKey = decodeSecret(secretDef, sourceOf(secretDef)!, invalid);
  if (KNOWN_DEFAULT_SECRETS.has(secretKey.reveal().toLowerCase())) {
    warnings.push('[cluster] secret_key is a well-known default; anyone who knows it can join this cluster. Generate a long random secret.');
  }
  const architecture = get<Architecture>('state', 'architecture');
  const preferredNodeIndices = Object.fromEntries(
    SCOPED_SERVICES.map((service) => [service, get<number[]>('state', `preferred_node_indices.${service}`)]).filter(([, list]) => (list as number[]).length > 0),
  ) as Partial<Record<ScopedService, number[]>>;
  if (architecture === 'adaptive') {
    for (const service of Object.keys(preferredNodeIndices)) warnings.push(`[state] preferred_node_indices.${service} is ignored with architecture = adaptive; set architecture = directed to use it.`);
  }
  const groupId = get<string | null>('state', 'group_id');
  if (get<StateProviderName>('state', 'provider') !== 'redis') {
    for (const key of ['redis_wait_replicas', 'redis_wait_timeout']) {
      if (values.has(`state.${key}`)) warnings.push(`[state] ${key} applies to provider = redis only; it is ignored with provider = grid.`);
    }
  }
  const previousDef = findKey('cluster', 'previous_secret_keys')!;
  const previousSrc = sourceOf(previousDef);
  const consoleKeyText = get<string | null>('cluster', 'console_public_key');
  const previousSecretKeys = previousSrc
    ? splitList(previousSrc.value).map((item) => decodeSecret(previousDef, { ...previousSrc, value: item }, invalid))
    : [];

  const apiKeysDef = findKey('http', 'api_keys')!;
  const apiKeysSrc = sourceOf(apiKeysDef);
  const apiKeys = apiKeysSrc
    ? splitList(apiKeysSrc.value).map((item) => {
        const key = decodeSecret(apiKeysDef, { ...apiKeysSrc, value: item }, invalid);
        if (key.reveal().length < 16) throw invalid(apiKeysDef, apiKeysSrc, 'an API key is shorter than 16 characters');
        return key;
      })
    : [];
  const metricsTokenDef = findKey('http', 'metrics_token')!;
  const metricsTokenSrc = sourceOf(metricsTokenDef);
  let metricsToken: Secret | undefined;
  if (metricsTokenSrc && metricsTokenSrc.value.trim() !== '') {
    metricsToken = decodeSecret(metricsTokenDef, metricsTokenSrc, invalid);
    if (metricsToken.reveal().length < 16) throw invalid(metricsTokenDef, metricsTokenSrc, 'the token is shorter than 16 characters');
  }
  const adminPasswordDef = findKey('console', 'admin_password')!;
  const adminPasswordSrc = sourceOf(adminPasswordDef);
  let adminPassword: Secret | undefined;
  if (adminPasswordSrc && adminPasswordSrc.value.trim() !== '') {
    adminPassword = decodeSecret(adminPasswordDef, adminPasswordSrc, invalid);
    if (adminPassword.reveal().length < MIN_ADMIN_PASSWORD_LENGTH) throw invalid(adminPasswordDef, adminPasswordSrc, `the password is shorter than ${MIN_ADMIN_PASSWORD_LENGTH} characters`);
  }
  const provider = get<StateProviderName>('state', 'provider');
  const redisUrl = (values.get('state.redis_url') as string | undefined) || undefined;
  if (provider === 'redis' && !redisUrl) {
    throw new CohortError('CONFIG_MISSING_KEY', `${file}: [state] redis_url: required with [state] provider = redis`, { file, section: 'state', key: 'redis_url' });
  }

  const baseDir = dirname(file);
  const nodeId = get<string>('node', 'id');
  const role = get<Role>('node', 'role');
  const dataDir = resolve(baseDir, values.has('node.data_dir') ? get<string>('node', 'data_dir') : `./data/${nodeId}`);
  const repoUrl = values.get('repository.url') as string | undefined;
  const needsRepository = role === 'console' || role === 'replica';

  const mode = get<Mode>('node', 'mode');
  const proxy = values.get('http.proxy') as Address | undefined;
  if (role === 'engine' && mode === 'inline' && proxy === undefined) {
    throw new CohortError('CONFIG_MISSING_KEY', `${file}: [http] proxy: required for an engine with [node] mode = inline (the address the inline proxy listens on); allowed: ${findKey('http', 'proxy')!.allowed}`, { file, section: 'http', key: 'proxy' });
  }
  if (proxy !== undefined && !(role === 'engine' && mode === 'inline')) {
    warnings.push(`[http] proxy is used only by engines with [node] mode = inline; this ${role} in ${mode} mode does not listen on it.`);
  }

  const scheduler = {
    enabled: get<boolean>('scheduler', 'enabled'),
    checkInIntervalMs: get<number>('scheduler', 'check_in_interval'),
    checkInOffsetMs: get<number>('scheduler', 'check_in_offset'),
    instanceTimeoutMs: get<number>('scheduler', 'instance_timeout'),
    instanceRecoveryTimeoutMs: get<number>('scheduler', 'instance_recovery_timeout'),
    pollIntervalMs: get<number>('scheduler', 'poll_interval'),
    runHistory: get<number>('scheduler', 'run_history'),
  };
  const checkInPeriod = scheduler.checkInIntervalMs + scheduler.checkInOffsetMs;
  if (scheduler.instanceTimeoutMs <= checkInPeriod) {
    throw new CohortError(
      'CONFIG_INVALID_VALUE',
      `${file}: [scheduler] instance_timeout (${scheduler.instanceTimeoutMs} ms) must be longer than check_in_interval + check_in_offset (${checkInPeriod} ms), or a healthy node would count as recovering between its own check-ins`,
      { file, section: 'scheduler', key: 'instance_timeout' },
    );
  }

  const tls = tlsSettings(get, baseDir, file, warnings);

  return {
    file,
    node: { id: nodeId, role, mode, dataDir },
    cluster: {
      id: get<string>('cluster', 'id'),
      bind: get<Address>('cluster', 'bind'),
      advertise: advertiseAddress(values, file),
      peers: get<Address[]>('cluster', 'peers'),
      secretKey,
      previousSecretKeys,
      consolePublicKey: consoleKeyText ? parsePublicKey(consoleKeyText) : undefined,
      profile: get<Profile>('cluster', 'profile'),
      timing: timingOverrides(values),
    },
    http: {
      runtime: get<Address>('http', 'runtime'),
      proxy,
      trustedProxies: get<string[]>('http', 'trusted_proxies'),
      admin: get<Address>('http', 'admin'),
      manage: get<Address>('http', 'manage'),
      bodyLimit: get<number>('http', 'body_limit'),
      apiKeys,
      metrics: get<boolean>('http', 'metrics'),
      metricsToken,
      drainMs: Math.round((values.has('http.drain_seconds') ? get<number>('http', 'drain_seconds') : defaultDrainSeconds(get<Profile>('cluster', 'profile'))) * 1000),
    },
    state: {
      provider,
      redisUrl: redisUrl ? new Secret(redisUrl) : undefined,
      redisWaitReplicas: get<number | null>('state', 'redis_wait_replicas'),
      redisWaitTimeoutMs: get<number>('state', 'redis_wait_timeout'),
      architecture,
      replicationFactor: get<number>('state', 'replication_factor'),
      groupId,
      interGroup: get<ScopedService[]>('state', 'inter_group'),
      nodeIndex: get<number | null>('state', 'node_index'),
      preferredNodeIndices,
      rpcTimeoutMs: get<number>('state', 'rpc_timeout'),
      retrieveMajorityOnly: get<boolean>('state', 'retrieve_majority_only'),
      readLocalOnly: get<boolean>('state', 'read_local_only'),
      bulkRevocationTimeoutMs: get<number>('state', 'bulk_revocation_timeout'),
      revocationCap: get<number>('state', 'revocation_cap'),
      limits: Object.fromEntries(VALUE_CAPS.map((c) => [c.field, get<number>('state', c.key)])) as ValueCaps,
    },
    scheduler,
    console: {
      pollingDelayMs: get<number>('console', 'polling_delay'),
      pushChanges: get<boolean>('console', 'push_changes'),
      adminUser: get<string>('console', 'admin_user'),
      adminPassword,
      tokenTtlMs: get<number>('console', 'token_ttl') * 1000,
      loginMaxFailures: get<number>('console', 'login_max_failures'),
      loginLockoutMs: get<number>('console', 'login_lockout') * 1000,
      loginUserMaxFailures: get<number>('console', 'login_user_max_failures'),
      loginSourceBurst: get<number>('console', 'login_source_burst'),
      loginSourcePerMinute: get<number>('console', 'login_source_per_minute'),
      loginMaxConcurrent: get<number>('console', 'login_max_concurrent'),
    },
    repository: {
      url: repoUrl ? resolveRepositoryUrl(repoUrl, baseDir) : needsRepository ? `sqlite:${resolve(dataDir, 'repository.db')}` : undefined,
    },
    log: { level: get<LogLevel>('log', 'level'), format: get<LogFormat>('log', 'format') },
    access: {
      decisionLog: get<DecisionLog>('access', 'decision_log'),
      sessionCacheTtlMs: get<number>('access', 'session_cache_ttl'),
      sessionTouchIntervalMs: get<number>('access', 'session_touch_interval'),
      rateLimitAllotment: get<number>('access', 'rate_limit_allotment'),
      jwtCacheSize: get<number>('access', 'jwt_cache_size'),
    },
    tls,
    warnings,
  };
}

/**
 * `[tls]`, checked as a whole: a certificate needs its key (and the reverse), and a listener
 * that requires client certificates needs the CA that issues them and must serve HTTPS at all.
 */
function tlsSettings(get: <T>(section: string, key: string) => T, baseDir: string, file: string, warnings: string[]): TlsSettings | undefined {
  const certFile = get<string>('tls', 'cert_file');
  const keyFile = get<string>('tls', 'key_file');
  const caFile = get<string>('tls', 'ca_file');
  const listeners = get<TlsListener[]>('tls', 'listeners');
  const clientCertificates = get<TlsListener[]>('tls', 'client_certificates');
  const refuse = (key: string, message: string): CohortError =>
    new CohortError('CONFIG_INVALID_VALUE', `${file}: [tls] ${key}: ${message}; allowed: ${findKey('tls', key)!.allowed}`, { file, section: 'tls', key });
  if (certFile === '' && keyFile === '') {
    if (clientCertificates.length > 0) throw refuse('client_certificates', 'client certificates need TLS: set cert_file and key_file too');
    if (caFile !== '') warnings.push('[tls] ca_file is used only with cert_file and key_file; every HTTP listener of this node speaks plain HTTP.');
    return undefined;
  }
  if (certFile === '') throw refuse('cert_file', 'key_file is set but cert_file is empty: set both or neither');
  if (keyFile === '') throw refuse('key_file', 'cert_file is set but key_file is empty: set both or neither');
  const plain = clientCertificates.filter((l) => !listeners.includes(l));
  if (plain.length > 0) throw refuse('client_certificates', `${plain.join(', ')} ${plain.length > 1 ? 'are' : 'is'} not in [tls] listeners, so ${plain.length > 1 ? 'they speak' : 'it speaks'} plain HTTP and cannot ask for a client certificate`);
  if (clientCertificates.length > 0 && caFile === '') throw refuse('client_certificates', 'client certificates are checked against ca_file, which is empty');
  return {
    certFile: resolve(baseDir, certFile),
    keyFile: resolve(baseDir, keyFile),
    caFile: caFile === '' ? '' : resolve(baseDir, caFile),
    listeners,
    clientCertificates,
    minVersion: get<TlsVersion>('tls', 'min_version'),
    reloadIntervalMs: get<number>('tls', 'reload_interval'),
  };
}

/**
 * How long a stopping engine keeps serving by default: long enough for load balancers that
 * check readiness every second or two to take it out (5 s), and short on one machine, where
 * the local cluster and the tests restart engines often (0.5 s).
 */
export function defaultDrainSeconds(profile: Profile): number {
  return profile === 'local' ? 0.5 : 5;
}

function advertiseAddress(values: Map<string, unknown>, file: string): Address {
  const advertise = values.get('cluster.advertise') as Address | undefined;
  const bind = (values.get('cluster.bind') as Address | undefined) ?? (findKey('cluster', 'bind')!.parse(findKey('cluster', 'bind')!.default!) as Address);
  if (advertise) return advertise;
  if (isWildcardHost(bind.host)) {
    throw new CohortError(
      'CONFIG_INVALID_VALUE',
      `${file}: [cluster] bind ${bind.host} listens on every interface, so other nodes need to be told where to reach this one: set [cluster] advertise to host:port`,
      { file, section: 'cluster', key: 'advertise' },
    );
  }
  return bind;
}

function timingOverrides(values: Map<string, unknown>): Partial<Record<TimingField, number>> {
  const out: Partial<Record<TimingField, number>> = {};
  for (const t of TIMING_OVERRIDES) {
    const v = values.get(`cluster.${t.key}`);
    if (typeof v === 'number') out[t.field] = v;
  }
  return out;
}

function decodeSecret(
  def: KeyDef,
  src: Source,
  invalid: (def: KeyDef, src: Source, reason: string) => CohortError,
): Secret {
  let plain = src.value.trim();
  if (isObfuscated(plain)) {
    const decoded = deobfuscate(plain);
    if (decoded === undefined) {
      throw new CohortError('CONFIG_BAD_OBFUSCATION', `${src.origin}: OBF: value does not decode (mistyped or truncated?); make a new one with "cohort obfuscate"`, {
        section: def.section,
        key: def.key,
      });
    }
    plain = decoded;
  }
  if (plain.length === 0) throw invalid(def, src, 'must not be empty');
  if (plain.length > MAX_SECRET_LENGTH) throw invalid(def, src, `is ${plain.length} characters long, more than ${MAX_SECRET_LENGTH}`);
  return new Secret(plain);
}

function resolveRepositoryUrl(url: string, baseDir: string): string {
  if (!url.startsWith('sqlite:')) return url;
  const path = url.slice('sqlite:'.length);
  if (path === ':memory:') return url;
  return `sqlite:${isAbsolute(path) ? path : resolve(baseDir, path)}`;
}
