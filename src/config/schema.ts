/**
 * Every key of the node configuration file, in one table: its type, default, unit, what it
 * means and what values are allowed. The loader validates against this table, the error
 * messages quote its `allowed` text, and docs/configuration.md is checked against it by a
 * unit test, so the three cannot drift apart.
 *
 * Names may be added, never changed (operators' files and COHORT_<SECTION>_<KEY> variables
 * depend on them).
 */
import { parsePublicKey } from '../policy/console-authority.js';
import {
  CLUSTER_ID_PATTERN,
  NODE_ID_PATTERN,
  InvalidValue,
  parseAddress,
  parseAddressList,
  parseBoolean,
  parseCidrList,
  parseEnum,
  parseInteger,
  parsePattern,
  splitList,
} from './values.js';
import { parseRedisUrl, REDIS_URL_FORMS } from './redis-url.js';

/** Group ids: letters, digits, `_ -` (they are written into session ids). */
const GROUP_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

function parseServiceList(raw: string): ScopedService[] {
  const items = splitList(raw);
  for (const item of items) if (!(SCOPED_SERVICES as readonly string[]).includes(item)) throw new InvalidValue(`${item} is not a service`);
  return [...new Set(items)] as ScopedService[];
}

export const ROLES = ['console', 'replica', 'engine'] as const;
export type Role = (typeof ROLES)[number];
export const MODES = ['inline', 'sideband'] as const;
export type Mode = (typeof MODES)[number];
export const PROFILES = ['lan', 'wan', 'local'] as const;
export type Profile = (typeof PROFILES)[number];
export const ARCHITECTURES = ['adaptive', 'directed'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];
/** Services whose state can be kept within a subcluster or on preferred engines (revocations are always on every engine). */
export const SCOPED_SERVICES = ['session', 'lockout', 'replay', 'artifact', 'state', 'token', 'rate_limit'] as const;
export type ScopedService = (typeof SCOPED_SERVICES)[number];
/** Services shared across subclusters by default: the counters and ids that guard security. */
export const DEFAULT_INTER_GROUP: readonly ScopedService[] = ['lockout', 'replay', 'rate_limit'];
export const STATE_PROVIDERS = ['grid', 'redis'] as const;
export type StateProviderName = (typeof STATE_PROVIDERS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DECISION_LOGS = ['all', 'deny', 'none'] as const;
export type DecisionLog = (typeof DECISION_LOGS)[number];
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** The HTTP listeners `[tls]` can put TLS on. */
export const TLS_LISTENERS = ['runtime', 'admin', 'manage', 'proxy'] as const;
export type TlsListener = (typeof TLS_LISTENERS)[number];
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];

/** `all`, `none` (where allowed) or a list of listeners, as the set of listeners it names. */
function parseListenerList(raw: string, word: 'all' | 'none'): TlsListener[] {
  const items = splitList(raw);
  if (items.length === 1 && items[0] === 'all') return [...TLS_LISTENERS];
  if (word === 'none' && (items.length === 0 || (items.length === 1 && items[0] === 'none'))) return [];
  if (items.length === 0) throw new InvalidValue('must name at least one listener (or all)');
  for (const item of items) if (!(TLS_LISTENERS as readonly string[]).includes(item)) throw new InvalidValue(`${item} is not an HTTP listener`);
  return [...new Set(items)] as TlsListener[];
}

export interface KeyDef {
  section: string;
  key: string;
  /** Type as shown in the docs. */
  type: string;
  /** The default as it would be written in the file; `undefined` when the key is required. */
  default: string | undefined;
  /** Unit of a numeric value ("ms", "bytes"), or "" when it has none. */
  unit: string;
  /** What the key means, one sentence or two. */
  doc: string;
  /** What values are allowed, quoted in error messages. */
  allowed: string;
  /** A secret: its value never appears in messages or logs. */
  secret?: boolean;
  /** Raw string to typed value; throws InvalidValue. */
  parse(raw: string): unknown;
}

export const MAX_SECRET_LENGTH = 128;
/** A configured admin password: at least as long as the 24-character one a console generates is strong. */
export const MIN_ADMIN_PASSWORD_LENGTH = 12;

const identity = (raw: string): string => raw.trim();

/** A number of seconds, decimals allowed (`0.5`), within [min, max]. */
function parseSeconds(raw: string, min: number, max: number): number {
  const v = raw.trim();
  if (!/^\d+(\.\d+)?$/.test(v)) throw new InvalidValue('not a number of seconds');
  const n = Number(v);
  if (n < min || n > max) throw new InvalidValue(`out of range ${min} to ${max}`);
  return n;
}

/** 0.0.0.0 and :: listen on every interface; nobody can dial them. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/**
 * The membership timings an operator may override, each named after its field in the
 * cluster layer's `MembershipTiming` (a unit test checks they match). Defaults come from the
 * profile, so the keys default to empty.
 */
export const TIMING_OVERRIDES = [
  { key: 'probe_interval', field: 'probeIntervalMs', unit: 'ms', min: 10, max: 600_000, doc: 'How often this node probes one peer.' },
  { key: 'probe_timeout', field: 'probeTimeoutMs', unit: 'ms', min: 5, max: 600_000, doc: 'How long a direct probe waits for its answer before peers are asked to probe indirectly; must be less than probe_interval.' },
  { key: 'indirect_checks', field: 'indirectChecks', unit: 'peers', min: 0, max: 16, doc: 'How many peers are asked to probe an unresponsive peer on this node\'s behalf.' },
  { key: 'suspicion_mult', field: 'suspicionMult', unit: '', min: 1, max: 100, doc: 'Scales the suspicion timeout: at least suspicion_mult x max(1, log10 N) x probe_interval.' },
  { key: 'suspicion_max_timeout_mult', field: 'suspicionMaxTimeoutMult', unit: '', min: 1, max: 100, doc: 'A suspicion starts at this multiple of its minimum timeout and shrinks as other nodes confirm it.' },
  { key: 'gossip_interval', field: 'gossipIntervalMs', unit: 'ms', min: 5, max: 600_000, doc: 'How often queued membership news is gossiped.' },
  { key: 'gossip_nodes', field: 'gossipNodes', unit: 'peers', min: 1, max: 64, doc: 'To how many random peers each gossip round sends.' },
  { key: 'push_pull_interval', field: 'pushPullIntervalMs', unit: 'ms', min: 100, max: 86_400_000, doc: 'How often a full member-list exchange with one random peer runs (stretched for clusters over 32 nodes).' },
  { key: 'retransmit_mult', field: 'retransmitMult', unit: '', min: 1, max: 100, doc: 'Each piece of news is retransmitted about retransmit_mult x log10(N + 1) times.' },
  { key: 'awareness_max_multiplier', field: 'awarenessMaxMultiplier', unit: '', min: 1, max: 100, doc: 'Upper bound of the factor by which a struggling node stretches its own probe timeouts.' },
  { key: 'reconnect_interval', field: 'reconnectIntervalMs', unit: 'ms', min: 10, max: 3_600_000, doc: 'How often this node tries to reach one inactive member, so that a healed partition merges by itself, and resolves the host names among `peers` again.' },
  { key: 'reap_timeout', field: 'reapTimeoutMs', unit: 'ms', min: 1000, max: 31_536_000_000, doc: 'How long an inactive or left member stays listed before it is forgotten.' },
] as const;

export type TimingField = (typeof TIMING_OVERRIDES)[number]['field'];

/**
 * The runtime API's caps on the values it stores, in bytes of their serialized JSON: one API
 * key holder must not be able to fill the engines' memory (every engine holding a copy keeps
 * the value) or Redis with a few huge values. A route's body limit follows its cap.
 */
export const VALUE_CAPS = [
  { key: 'max_session_attributes_bytes', field: 'sessionAttributesBytes', default: 16_384, what: 'a session\'s `attributes`', why: '16 KiB holds a generous set of claims, roles and groups' },
  { key: 'max_artifact_bytes', field: 'artifactBytes', default: 65_536, what: 'an artifact\'s `payload`', why: '64 KiB holds a signed SAML response with its certificates' },
  { key: 'max_state_value_bytes', field: 'stateValueBytes', default: 65_536, what: 'an inter-request state `value`', why: '64 KiB holds a saved authentication request with its relay state' },
  { key: 'max_token_bytes', field: 'tokenBytes', default: 16_384, what: 'a token-cache `value`', why: '16 KiB holds a signed JWT with many claims' },
] as const;

export type ValueCaps = Record<(typeof VALUE_CAPS)[number]['field'], number>;

export const DEFAULT_VALUE_CAPS: ValueCaps = Object.fromEntries(VALUE_CAPS.map((c) => [c.field, c.default])) as ValueCaps;

/** Bounds of every cap: a grid frame between engines carries at most 16 MiB, several records at a time. */
const VALUE_CAP_MIN = 256;
const VALUE_CAP_MAX = 4 * 1024 * 1024;

export const KEYS: readonly KeyDef[] = [
  // [node]
  {
    section: 'node', key: 'id', type: 'string', default: undefined, unit: '',
    doc: 'Unique id of this node in the cluster. Required.',
    allowed: 'letters, digits, _ - . (1 to 64 characters, starting with a letter or digit)',
    parse: (raw) => parsePattern(raw, NODE_ID_PATTERN),
  },
  {
    section: 'node', key: 'role', type: 'enum', default: undefined, unit: '',
    doc: 'What this node does: `console` owns the configuration, `replica` stands by to replace it, `engine` serves runtime traffic. Required.',
    allowed: ROLES.join(' | '),
    parse: (raw) => parseEnum(raw, ROLES),
  },
  {
    section: 'node', key: 'mode', type: 'enum', default: 'sideband', unit: '',
    doc: 'How engines enforce access decisions; must be the same on every node of the cluster.',
    allowed: MODES.join(' | '),
    parse: (raw) => parseEnum(raw, MODES),
  },
  {
    section: 'node', key: 'data_dir', type: 'path', default: './data/<node id>', unit: '',
    doc: 'Directory for this node\'s persistent files (management credential, persisted state, applied configuration). Relative paths are resolved against the configuration file\'s directory.',
    allowed: 'a directory path',
    parse: (raw) => {
      const v = raw.trim();
      if (v.length === 0) throw new InvalidValue('must not be empty');
      return v;
    },
  },
  // [cluster]
  {
    section: 'cluster', key: 'id', type: 'string', default: undefined, unit: '',
    doc: 'Name of the cluster; a node with a different id is refused. Required.',
    allowed: 'letters, digits, _ - . / (1 to 64 characters)',
    parse: (raw) => parsePattern(raw, CLUSTER_ID_PATTERN),
  },
  {
    section: 'cluster', key: 'bind', type: 'host:port', default: '127.0.0.1:8020', unit: '',
    doc: 'Address of the cluster port (node-to-node traffic, always encrypted).',
    allowed: 'host:port with port 1 to 65535',
    parse: parseAddress,
  },
  {
    section: 'cluster', key: 'advertise', type: 'host:port', default: '', unit: '',
    doc: 'The cluster address other nodes reach this node at, when it differs from `bind` (NAT, containers). Required when `bind` is a wildcard address such as 0.0.0.0; empty: the bind address.',
    allowed: 'empty, or host:port with a specific host (not 0.0.0.0 or ::) and port 1 to 65535',
    parse: (raw) => {
      if (raw.trim() === '') return undefined;
      const a = parseAddress(raw);
      if (isWildcardHost(a.host)) throw new InvalidValue('a wildcard host cannot be dialled by other nodes');
      return a;
    },
  },
  {
    section: 'cluster', key: 'peers', type: 'host:port list', default: '', unit: '',
    doc: 'Comma-separated cluster addresses of existing members to join through; empty for the first node. Host names are allowed: a name stands for every address it resolves to (a headless Service, a round-robin name), each of which is tried, and names are resolved again every `reconnect_interval` while the node runs, so members that appear behind a name later are found.',
    allowed: 'comma-separated host:port values, or empty',
    parse: parseAddressList,
  },
  {
    section: 'cluster', key: 'secret_key', type: 'secret', default: undefined, unit: '',
    doc: 'Shared secret every node must prove; all cluster traffic is encrypted with keys derived from it. Plain or `OBF:` (see `cohort obfuscate`). Required.',
    allowed: `1 to ${MAX_SECRET_LENGTH} characters after decoding, plain or OBF:`,
    secret: true,
    parse: identity,
  },
  {
    section: 'cluster', key: 'previous_secret_keys', type: 'secret list', default: '', unit: '',
    doc: 'Comma-separated earlier secrets still accepted for incoming traffic while a key rotation is under way. Use the `OBF:` form for a secret containing a comma.',
    allowed: `comma-separated secrets of 1 to ${MAX_SECRET_LENGTH} characters, plain or OBF:`,
    secret: true,
    parse: identity,
  },
  {
    section: 'cluster', key: 'console_public_key', type: 'string', default: '', unit: '',
    doc: 'Engines: the console authority\'s public key (the console logs it at start, and writes it to DATA_DIR/console-authority.pub), so the engine applies only configurations the console signed from its very first contact (`cohort up` writes it into the engines\' files). Empty: the key of the first console that proves it is pinned in DATA_DIR/console-authority.pub.',
    allowed: 'empty, or an Ed25519 public key as base64 (DER SubjectPublicKeyInfo, 60 characters)',
    parse: (raw) => {
      const v = raw.trim();
      if (v === '') return null;
      if (!parsePublicKey(v)) throw new InvalidValue('is not an Ed25519 public key in base64');
      return v;
    },
  },
  {
    section: 'cluster', key: 'profile', type: 'enum', default: 'lan', unit: '',
    doc: 'Timing profile of the membership protocol: `lan` for one data centre, `wan` for slow links, `local` for one machine and tests.',
    allowed: PROFILES.join(' | '),
    parse: (raw) => parseEnum(raw, PROFILES),
  },
  // [cluster] timing overrides: empty means the profile's value (docs/configuration.md lists them per profile)
  ...TIMING_OVERRIDES.map((t): KeyDef => ({
    section: 'cluster', key: t.key, type: 'integer', default: '', unit: t.unit,
    doc: `${t.doc} Empty: the profile's value.`,
    allowed: `empty, or integer ${t.min} to ${t.max}`,
    parse: (raw) => (raw.trim() === '' ? undefined : parseInteger(raw, t.min, t.max)),
  })),
  // [http]
  {
    section: 'http', key: 'runtime', type: 'host:port', default: '127.0.0.1:9000', unit: '',
    doc: 'Engines: address of the runtime API and health checks.',
    allowed: 'host:port with port 1 to 65535',
    parse: parseAddress,
  },
  {
    section: 'http', key: 'proxy', type: 'host:port', default: '', unit: '',
    doc: 'Engines in `[node] mode = inline`: address of the inline proxy, which decides on every request and forwards the allowed ones to their API\'s `upstream`. Required for an engine in inline mode; empty otherwise.',
    allowed: 'empty, or host:port with port 1 to 65535',
    parse: (raw) => (raw.trim() === '' ? undefined : parseAddress(raw)),
  },
  {
    section: 'http', key: 'trusted_proxies', type: 'list', default: '', unit: '',
    doc: 'Engines: the load balancers and proxies in front of this engine whose `X-Forwarded-For` is believed. The client\'s address is the rightmost `X-Forwarded-For` entry that is not one of them: at the inline proxy only when the connection itself comes from one of them (else the connection\'s address is the client, whatever it sent), at the sideband doors after the last entry the asking gateway appended. Empty: the inline proxy takes the connection\'s address and the doors the last entry.',
    allowed: 'empty, or comma-separated IP addresses and CIDR ranges, IPv4 or IPv6',
    parse: parseCidrList,
  },
  {
    section: 'http', key: 'admin', type: 'host:port', default: '127.0.0.1:9080', unit: '',
    doc: 'Console and replica: address of the admin API, served over plain HTTP unless `[tls]` gives it a certificate; bind it to loopback or a management network.',
    allowed: 'host:port with port 1 to 65535',
    parse: parseAddress,
  },
  {
    section: 'http', key: 'manage', type: 'host:port', default: '127.0.0.1:9100', unit: '',
    doc: 'Every node: address of the management API the CLI talks to.',
    allowed: 'host:port with port 1 to 65535',
    parse: parseAddress,
  },
  {
    section: 'http', key: 'api_keys', type: 'secret list', default: '', unit: '',
    doc: 'Engines: comma-separated API keys the runtime API accepts as `Authorization: Bearer <key>` (kept only as hashes in memory). Until the console issues keys, they are configured here; `cohort up` writes one. Empty: the runtime API refuses every request.',
    allowed: 'comma-separated keys of 16 to 128 characters, plain or OBF:',
    secret: true,
    parse: identity,
  },
  {
    section: 'http', key: 'body_limit', type: 'integer', default: '1048576', unit: 'bytes',
    doc: 'Largest request body any API of this node accepts; larger bodies get 413 HTTP_BODY_TOO_LARGE.',
    allowed: 'integer 1024 to 67108864',
    parse: (raw) => parseInteger(raw, 1024, 64 * 1024 * 1024),
  },
  {
    section: 'http', key: 'metrics', type: 'boolean', default: 'true', unit: '',
    doc: 'Every node: serve Prometheus metrics at `GET /metrics` on the manage port and time every HTTP request for them. False: no metrics route and no timing (`npm run bench:runtime` measures the difference).',
    allowed: 'true | false',
    parse: parseBoolean,
  },
  {
    section: 'http', key: 'metrics_token', type: 'secret', default: '', unit: '',
    doc: 'Every node: a bearer token `GET /metrics` on the manage port requires (`Authorization: Bearer <token>`). Empty: the metrics need no credential, which suits a manage port bound to loopback or a management network.',
    allowed: 'empty, or 16 to 128 characters, plain or OBF:',
    secret: true,
    parse: identity,
  },
  {
    section: 'http', key: 'drain_seconds', type: 'decimal', default: '', unit: 's',
    doc: 'Engines: on SIGTERM (or `cohort cluster stop`) how long the engine keeps serving after `/health/ready` turned 503, so that load balancers take it out of rotation before it hands its partitions off, leaves and exits. Connections stay kept alive meanwhile; then the engine refuses new connections, answers what still comes on open ones with `Connection: close`, and waits up to as long again for its clients to close them (a balancer closing its own idle connection races nothing; an engine ending it could cut a request written into it). Empty: 5, or 0.5 with `[cluster] profile = local`.',
    allowed: 'empty, or a number of seconds from 0 to 300 (decimals allowed, e.g. 0.5)',
    parse: (raw) => (raw.trim() === '' ? undefined : parseSeconds(raw, 0, 300)),
  },
  // [tls]
  {
    section: 'tls', key: 'cert_file', type: 'path', default: '', unit: '',
    doc: 'PEM file with this node\'s certificate (then any intermediate certificates) for its HTTPS listeners. Set with `key_file`; empty (with `key_file` empty): every HTTP listener speaks plain HTTP. Read at start and again whenever it changes on disk (see `reload_interval`), without a restart. Relative paths are resolved against the configuration file\'s directory.',
    allowed: 'empty, or a file path',
    parse: (raw) => raw.trim(),
  },
  {
    section: 'tls', key: 'key_file', type: 'path', default: '', unit: '',
    doc: 'PEM file with the private key of `cert_file` (unencrypted; make it readable by the node\'s user only). Reloaded with the certificate.',
    allowed: 'empty, or a file path',
    parse: (raw) => raw.trim(),
  },
  {
    section: 'tls', key: 'ca_file', type: 'path', default: '', unit: '',
    doc: 'PEM file of the certificate authorities of this cluster: the listeners named in `client_certificates` accept only clients with a certificate they issued, and the CLI (and `cohort up`) trust them, besides the system\'s, when they call this node. Reloaded on change.',
    allowed: 'empty, or a file path',
    parse: (raw) => raw.trim(),
  },
  {
    section: 'tls', key: 'listeners', type: 'list', default: 'all', unit: '',
    doc: 'Which HTTP listeners serve HTTPS when `cert_file` is set: `all`, or some of runtime, admin, manage, proxy (a listener left out speaks plain HTTP, for instance a manage port on loopback behind a TLS-terminating balancer).',
    allowed: `all, or comma-separated from: ${TLS_LISTENERS.join(', ')}`,
    parse: (raw) => parseListenerList(raw, 'all'),
  },
  {
    section: 'tls', key: 'client_certificates', type: 'list', default: 'none', unit: '',
    doc: 'HTTPS listeners that require a client certificate issued by `ca_file` (mutual TLS): a client without one, or with one from another authority, is refused during the handshake. The CLI presents this node\'s own `cert_file` and `key_file` to a manage listener that requires one, so give that certificate the client-authentication usage too (or none).',
    allowed: `none, all, or comma-separated from: ${TLS_LISTENERS.join(', ')}`,
    parse: (raw) => parseListenerList(raw, 'none'),
  },
  {
    section: 'tls', key: 'min_version', type: 'enum', default: 'TLSv1.2', unit: '',
    doc: 'Oldest TLS version the HTTPS listeners accept.',
    allowed: TLS_VERSIONS.join(' | '),
    parse: (raw) => parseEnum(raw, TLS_VERSIONS),
  },
  {
    section: 'tls', key: 'reload_interval', type: 'integer', default: '2000', unit: 'ms',
    doc: 'How often the node looks at `cert_file`, `key_file` and `ca_file` for a change. A changed set is loaded into every HTTPS listener without a restart (new connections get it; open ones keep theirs); a set that does not load (a key that does not match the certificate, a half-written file) is logged with NODE_TLS_RELOAD_FAILED and the listeners keep the previous one until the files change again.',
    allowed: 'integer 100 to 3600000',
    parse: (raw) => parseInteger(raw, 100, 3_600_000),
  },
  // [state]
  {
    section: 'state', key: 'architecture', type: 'enum', default: 'adaptive', unit: '',
    doc: 'How runtime state is placed: `adaptive` spreads partitions over replica sets by consistent hashing, `directed` shares each service\'s state with its preferred nodes.',
    allowed: ARCHITECTURES.join(' | '),
    parse: (raw) => parseEnum(raw, ARCHITECTURES),
  },
  {
    section: 'state', key: 'provider', type: 'enum', default: 'grid', unit: '',
    doc: 'Where runtime state lives: `grid` in the engines\' memory, `redis` in the Redis at `redis_url`.',
    allowed: STATE_PROVIDERS.join(' | '),
    parse: (raw) => parseEnum(raw, STATE_PROVIDERS),
  },
  {
    section: 'state', key: 'redis_url', type: 'url', default: '', unit: '',
    doc: 'With `provider = redis`: the Redis (or Valkey) to use, 7.0 or later. One server: `redis://[user:password@]host:port[/db]`. A Redis Cluster: `redis-cluster://[user:password@]host:port,host:port,...`, some of its nodes (the rest are learned from them). A master and replicas watched by Sentinels: `redis-sentinel://[user:password@]host:port,host:port,.../master-name[/db]`, the Sentinels\' addresses (asked without credentials; the credentials are the master\'s). `rediss`, `rediss-cluster`, `rediss-sentinel`: the same over TLS. A port left out is 6379 (26379 for Sentinels); a password holding `@ / , :` is percent-encoded.',
    allowed: `empty, or ${REDIS_URL_FORMS}`,
    secret: true,
    parse: (raw) => {
      const v = raw.trim();
      if (v !== '') parseRedisUrl(v);
      return v;
    },
  },
  {
    section: 'state', key: 'redis_wait_replicas', type: 'integer', default: '', unit: 'replicas',
    doc: 'With `provider = redis`: how many replicas must hold a revocation (also the one a session delete makes) or a replay id before it is acknowledged (the write is followed by `WAIT`), so that a master failing right after cannot lose it. Fewer within `redis_wait_timeout`: the call fails with STATE_NOT_REPLICATED (503) and is never silently acknowledged. Empty: 1 with `redis-cluster://` and `redis-sentinel://` URLs, 0 (no WAIT) with `redis://`, where a single server usually has no replica. 0: acknowledged once the master has it.',
    allowed: 'empty, or integer 0 to 16',
    parse: (raw) => (raw.trim() === '' ? null : parseInteger(raw, 0, 16)),
  },
  {
    section: 'state', key: 'redis_wait_timeout', type: 'integer', default: '1000', unit: 'ms',
    doc: 'With `provider = redis` and replicas to wait for: how long a revocation or replay id waits for them before it fails with STATE_NOT_REPLICATED.',
    allowed: 'integer 1 to 60000',
    parse: (raw) => parseInteger(raw, 1, 60_000),
  },
  {
    section: 'state', key: 'replication_factor', type: 'integer', default: '3', unit: 'engines',
    doc: 'Number of engines holding a copy of each partition.',
    allowed: 'integer 1 to 7',
    parse: (raw) => parseInteger(raw, 1, 7),
  },
  {
    section: 'state', key: 'group_id', type: 'string', default: '', unit: '',
    doc: 'Subcluster this engine belongs to; empty for none. The state of its services (but those in `inter_group`) is kept on the engines of the same subcluster, and its session ids carry the group id so that any engine routes a request for them here. With `provider = redis` the same scoping applies as key prefixes in Redis.',
    allowed: 'empty, or letters, digits, _ - (1 to 64 characters)',
    parse: (raw) => (raw.trim() === '' ? null : parsePattern(raw, GROUP_ID_PATTERN)),
  },
  {
    section: 'state', key: 'inter_group', type: 'list', default: DEFAULT_INTER_GROUP.join(', '), unit: '',
    doc: 'With `group_id`: the services whose state is shared by every subcluster instead of kept within this one. Revocations are always on every engine. A service left out (replay, say) is only guarded within each subcluster.',
    allowed: `comma-separated, from: ${SCOPED_SERVICES.join(', ')}; may be empty`,
    parse: (raw) => parseServiceList(raw),
  },
  {
    section: 'state', key: 'node_index', type: 'integer', default: '', unit: '',
    doc: 'This engine\'s number in `preferred_node_indices` lists. Empty: the number the node id ends with (`engine-3` is 3), or none.',
    allowed: 'empty, or integer 0 to 9999',
    parse: (raw) => (raw.trim() === '' ? null : parseInteger(raw, 0, 9999)),
  },
  ...SCOPED_SERVICES.map(
    (service): KeyDef => ({
      section: 'state', key: `preferred_node_indices.${service}`, type: 'list', default: '', unit: '',
      doc: `With \`architecture = directed\`: the \`node_index\` of the engines that share the ${service.replace('_', ' ')} state of this engine (within its subcluster when it has one). Empty: every engine of its scope. Engines that share state must list the same indices.`,
      allowed: 'comma-separated integers 0 to 9999; may be empty',
      parse: (raw) => splitList(raw).map((v) => parseInteger(v, 0, 9999)),
    }),
  ),
  {
    section: 'state', key: 'rpc_timeout', type: 'integer', default: '500', unit: 'ms',
    doc: 'How long a state request to other engines waits before it gives up.',
    allowed: 'integer 1 to 60000',
    parse: (raw) => parseInteger(raw, 1, 60_000),
  },
  {
    section: 'state', key: 'retrieve_majority_only', type: 'boolean', default: 'true', unit: '',
    doc: 'A read waits for a majority of the replica set (true) or for all of it (false). The grid acknowledges a write only once every replica holds it, so any in-sync replica answers a read and this setting does not change the grid\'s reads.',
    allowed: 'true | false',
    parse: parseBoolean,
  },
  {
    section: 'state', key: 'read_local_only', type: 'boolean', default: 'true', unit: '',
    doc: 'Grid provider: true answers revocation checks from this engine\'s own copy of the revocation list, at no cost; a revocation reaches every engine within tens of milliseconds, but an engine that was paused or cut off answers "not revoked" until it arrives. False: a check that its own copy does not answer "revoked" also asks the other engines, as many as acknowledge a revocation (a majority), so every acknowledged revocation is seen at once on every engine, at the cost of a round trip per check (every access decision with `checkRevocation`, every session lookup); an engine that cannot hear from enough of them answers 503 STATE_UNAVAILABLE (fails closed). The Redis provider holds one list that every check asks, whatever this says.',
    allowed: 'true | false',
    parse: parseBoolean,
  },
  {
    section: 'state', key: 'revocation_cap', type: 'integer', default: '1000000', unit: 'revocations',
    doc: 'Most revocations each engine holds (grid provider). Past it the oldest are evicted, and the engine logs a warning with the count at most once a minute.',
    allowed: 'integer 1000 to 100000000',
    parse: (raw) => parseInteger(raw, 1000, 100_000_000),
  },
  ...VALUE_CAPS.map((c): KeyDef => ({
    section: 'state', key: c.key, type: 'integer', default: String(c.default), unit: 'bytes',
    doc: `Largest ${c.what} the runtime API stores, as serialized JSON; a larger one is refused with 413 STATE_VALUE_TOO_LARGE before anything is stored, and a request body over twice this plus 4 KiB (within \`[http] body_limit\`) is not even read. The default: ${c.why}.`,
    allowed: `integer ${VALUE_CAP_MIN} to ${VALUE_CAP_MAX}`,
    parse: (raw) => parseInteger(raw, VALUE_CAP_MIN, VALUE_CAP_MAX),
  })),
  {
    section: 'state', key: 'bulk_revocation_timeout', type: 'integer', default: '10000', unit: 'ms',
    doc: 'Longest time a joining engine spends downloading the revocation list before it reports the failure.',
    allowed: 'integer 100 to 600000',
    parse: (raw) => parseInteger(raw, 100, 600_000),
  },
  // [repository]
  {
    section: 'repository', key: 'url', type: 'url', default: 'sqlite:<data_dir>/repository.db', unit: '',
    doc: 'Where configuration, audit and schedules are stored: `sqlite:PATH` (one host; relative paths are resolved against the configuration file\'s directory) or `postgres://user[:password]@host[:port]/database[?schema=NAME]` (several hosts; other parameters go to the driver, e.g. `application_name`, shown in `pg_stat_activity`, `cohort` unless given). Used by the console and replica; engines use it only when given one.',
    allowed: 'sqlite:PATH or postgres://...',
    parse: (raw) => {
      const v = raw.trim();
      if (v === '' || v.startsWith('sqlite:') || v.startsWith('postgres://') || v.startsWith('postgresql://')) return v;
      throw new InvalidValue('not a sqlite: or postgres:// URL');
    },
  },
  // [log]
  // [console]
  {
    section: 'console', key: 'polling_delay', type: 'integer', default: '2000', unit: 'ms',
    doc: 'How often engines and the replica ask the console for configuration (a fallback for the push on every save; an engine also asks as soon as a console joins its view of the cluster), and the unit of engine health: green when an engine last asked one interval ago, yellow 2 to 10, red over 10.',
    allowed: 'integer 100 to 600000',
    parse: (raw) => parseInteger(raw, 100, 600_000),
  },
  {
    section: 'console', key: 'push_changes', type: 'boolean', default: 'true', unit: '',
    doc: 'Console: tell every engine and the replica of each save at once. False leaves them to their polling (`polling_delay`), as systems that only poll do; `npm run bench:replication` measures both.',
    allowed: 'true | false',
    parse: parseBoolean,
  },
  {
    section: 'console', key: 'admin_user', type: 'string', default: 'admin', unit: '',
    doc: 'Console: the admin user created at first start (its password is `admin_password`, or a generated one written to DATA_DIR/admin-password).',
    allowed: 'letters, digits, _ - . (1 to 64 characters)',
    parse: (raw) => parsePattern(raw, NODE_ID_PATTERN),
  },
  {
    section: 'console', key: 'admin_password', type: 'secret', default: '', unit: '',
    doc: `Console: the password of \`admin_user\` when the console creates that user, at its first start on a repository without admin users (for a password kept in a secret store, e.g. a Kubernetes Secret through COHORT_CONSOLE_ADMIN_PASSWORD). Empty: a generated password, written to DATA_DIR/admin-password. The stored password is not changed by a later value: a console whose value no longer matches it logs a warning at start.`,
    allowed: `empty, or ${MIN_ADMIN_PASSWORD_LENGTH} to ${MAX_SECRET_LENGTH} characters, plain or OBF:`,
    secret: true,
    parse: identity,
  },
  {
    section: 'console', key: 'token_ttl', type: 'integer', default: '3600', unit: 's',
    doc: 'How long an admin API token from POST /admin/v1/login stays valid.',
    allowed: 'integer 60 to 604800',
    parse: (raw) => parseInteger(raw, 60, 604_800),
  },
  {
    section: 'console', key: 'login_max_failures', type: 'integer', default: '5', unit: 'logins',
    doc: 'Wrong passwords in a row from one address after which an admin user is locked out for that address (`login_lockout`); the same user from another address is not affected.',
    allowed: 'integer 1 to 100',
    parse: (raw) => parseInteger(raw, 1, 100),
  },
  {
    section: 'console', key: 'login_lockout', type: 'integer', default: '300', unit: 's',
    doc: 'How long a locked-out admin user is refused (for the address, or for every address it never signed in from), and the window of `login_user_max_failures`.',
    allowed: 'integer 1 to 86400',
    parse: (raw) => parseInteger(raw, 1, 86_400),
  },
  {
    section: 'console', key: 'login_user_max_failures', type: 'integer', default: '20', unit: 'logins',
    doc: 'Wrong passwords for one admin user from any addresses within `login_lockout` after which the user is locked out for every address it has not signed in from successfully before.',
    allowed: 'integer 1 to 10000',
    parse: (raw) => parseInteger(raw, 1, 10_000),
  },
  {
    section: 'console', key: 'login_source_burst', type: 'integer', default: '10', unit: 'logins',
    doc: 'Sign-ins one address may try at once before its budget (refilled at `login_source_per_minute`) runs out; beyond it sign-ins are refused (429 AUTH_LOGIN_THROTTLED) before any password check.',
    allowed: 'integer 1 to 10000',
    parse: (raw) => parseInteger(raw, 1, 10_000),
  },
  {
    section: 'console', key: 'login_source_per_minute', type: 'integer', default: '10', unit: 'logins/min',
    doc: 'How fast an address\'s budget of sign-ins refills.',
    allowed: 'integer 1 to 100000',
    parse: (raw) => parseInteger(raw, 1, 100_000),
  },
  {
    section: 'console', key: 'login_max_concurrent', type: 'integer', default: '2', unit: 'logins',
    doc: 'Password checks (scrypt) in flight at once for the whole console, whatever the addresses; one more is kept for addresses that signed in successfully before, and (when this is 2 or more) the last of these is kept for addresses with no failed sign-in within `login_lockout`, so the addresses of a flood, once they failed, share one check less. Beyond, sign-ins are refused at once (429 AUTH_LOGIN_THROTTLED), so a flood bounds the work it causes. Keep it below the size of libuv\'s thread pool (4 unless UV_THREADPOOL_SIZE says otherwise), so the kept check never queues behind the others there.',
    allowed: 'integer 1 to 64',
    parse: (raw) => parseInteger(raw, 1, 64),
  },
  // [scheduler]
  {
    section: 'scheduler', key: 'enabled', type: 'boolean', default: 'true', unit: '',
    doc: 'Runs the persistent scheduler on this node: the console, and engines given a `[repository] url` (a replica does not until it is promoted).',
    allowed: 'true | false',
    parse: parseBoolean,
  },
  {
    section: 'scheduler', key: 'check_in_interval', type: 'integer', default: '5000', unit: 'ms',
    doc: 'How often this scheduler node writes its check-in (plus `check_in_offset`).',
    allowed: 'integer 100 to 600000',
    parse: (raw) => parseInteger(raw, 100, 600_000),
  },
  {
    section: 'scheduler', key: 'check_in_offset', type: 'integer', default: '0', unit: 'ms',
    doc: 'Added to `check_in_interval` on this node: give nodes different offsets so their check-ins do not all hit the repository at once.',
    allowed: 'integer 0 to 600000',
    parse: (raw) => parseInteger(raw, 0, 600_000),
  },
  {
    section: 'scheduler', key: 'instance_timeout', type: 'integer', default: '30000', unit: 'ms',
    doc: 'A scheduler node whose check-in is older than this is `recovering`: the others take its jobs back (unstarted claims run again; started runs follow their misfire policy).',
    allowed: 'integer 500 to 3600000',
    parse: (raw) => parseInteger(raw, 500, 3_600_000),
  },
  {
    section: 'scheduler', key: 'instance_recovery_timeout', type: 'integer', default: '30000', unit: 'ms',
    doc: 'After `instance_timeout` plus this, a node that still has not checked in is `down`.',
    allowed: 'integer 0 to 3600000',
    parse: (raw) => parseInteger(raw, 0, 3_600_000),
  },
  {
    section: 'scheduler', key: 'poll_interval', type: 'integer', default: '250', unit: 'ms',
    doc: 'How often this scheduler node looks for due jobs (a fire time runs at most this late, plus the claim).',
    allowed: 'integer 10 to 60000',
    parse: (raw) => parseInteger(raw, 10, 60_000),
  },
  {
    section: 'scheduler', key: 'run_history', type: 'integer', default: '100', unit: 'runs',
    doc: 'Runs kept per schedule in the run history (older ones are deleted).',
    allowed: 'integer 1 to 100000',
    parse: (raw) => parseInteger(raw, 1, 100_000),
  },
  {
    section: 'access', key: 'decision_log', type: 'enum', default: 'deny', unit: '',
    doc: 'Engines: which access decisions are written to the node log as `access decision` lines (decisionId, time, engine, api, method, path, source address, subject, reason, enforce, duration): `all`, `deny` (denies, and allows in monitor mode that would have been denied), or `none`.',
    allowed: DECISION_LOGS.join(' | '),
    parse: (raw) => parseEnum(raw, DECISION_LOGS),
  },
  {
    section: 'access', key: 'session_cache_ttl', type: 'integer', default: '5000', unit: 'ms',
    doc: 'Engines: how long a session record read for an access decision is used by later decisions on this engine without reading it again. Revocations and deleted sessions still take effect at once (every decision checks the engine\'s local revocation list); 0 reads the session on every decision.',
    allowed: 'integer 0 to 60000',
    parse: (raw) => parseInteger(raw, 0, 60_000),
  },
  {
    section: 'access', key: 'session_touch_interval', type: 'integer', default: '60000', unit: 'ms',
    doc: 'Engines: access decisions extend a session\'s idle time with at most one write per session per this interval between all engines (at most a quarter of the session\'s idle timeout); 0 writes on every decision.',
    allowed: 'integer 0 to 86400000',
    parse: (raw) => parseInteger(raw, 0, 86_400_000),
  },
  {
    section: 'access', key: 'rate_limit_allotment', type: 'integer', default: '100', unit: 'tokens',
    doc: 'Engines: the most tokens of an API\'s rate-limit bucket an engine takes at once and hands to its decisions locally for up to 1 s (fewer for a key used less often: about half a second\'s worth of its recent rate; at most a tenth of the bucket): fewer round trips, at the cost of the accuracy described in docs/operations.md; 1 takes every token from the shared bucket (exact).',
    allowed: 'integer 1 to 10000',
    parse: (raw) => parseInteger(raw, 1, 10_000),
  },
  {
    section: 'access', key: 'jwt_cache_size', type: 'integer', default: '10000', unit: 'tokens',
    doc: 'Engines: how many verified JWTs (by SHA-256 of the token) are kept so that a repeated token costs no signature check, each until it expires and for at most 10 minutes; revocation, deny lists and single-use checks still run on every use. 0 verifies every time.',
    allowed: 'integer 0 to 1000000',
    parse: (raw) => parseInteger(raw, 0, 1_000_000),
  },
  {
    section: 'log', key: 'level', type: 'enum', default: 'info', unit: '',
    doc: 'Lowest level of log lines written.',
    allowed: LOG_LEVELS.join(' | '),
    parse: (raw) => parseEnum(raw, LOG_LEVELS),
  },
  {
    section: 'log', key: 'format', type: 'enum', default: 'auto', unit: '',
    doc: '`json` lines, `pretty` text, or `auto`: pretty when standard output is a terminal, JSON otherwise.',
    allowed: LOG_FORMATS.join(' | '),
    parse: (raw) => parseEnum(raw, LOG_FORMATS),
  },
];

export const SECTIONS: readonly string[] = [...new Set(KEYS.map((k) => k.section))];

export function findKey(section: string, key: string): KeyDef | undefined {
  return KEYS.find((k) => k.section === section && k.key === key);
}

/** The environment variable that overrides a key: COHORT_<SECTION>_<KEY>. */
export function envVarName(def: Pick<KeyDef, 'section' | 'key'>): string {
  return `COHORT_${def.section.toUpperCase()}_${def.key.toUpperCase().replaceAll('.', '_')}`;
}
