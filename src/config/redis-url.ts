/**
 * `[state] redis_url`: which Redis deployment the redis provider talks to. Pure, tested in
 * test/unit/redis-url.test.ts.
 *
 * - `redis://[user:password@]host:port[/db]` (`rediss://` for TLS): one server (or a proxy in
 *   front of one), handed to the client as it is.
 * - `redis-cluster://[user:password@]host:port,host:port,...` (`rediss-cluster://`): a Redis
 *   Cluster, given by a seed list of some of its nodes; the client learns the rest, and the
 *   slots, from whichever answers.
 * - `redis-sentinel://[user:password@]host:port,host:port,.../master-name[/db]`
 *   (`rediss-sentinel://`): a master and its replicas watched by Sentinels; the client asks
 *   the Sentinels where the master named `master-name` is, and again after a failover. The
 *   credentials are the data nodes' (the Sentinels are asked without credentials).
 *
 * A port left out is 6379 (26379 for Sentinels). User and password are percent-decoded, so a
 * password holding `@`, `/`, `,` or `:` is written percent-encoded. Error messages never
 * quote the URL: it may hold a password.
 */
import { InvalidValue } from './values.js';

export interface RedisHostPort {
  host: string;
  port: number;
}

export interface RedisCredentials {
  username?: string;
  password?: string;
}

export type RedisTarget =
  | { kind: 'server'; url: string; tls: boolean }
  | ({ kind: 'cluster'; nodes: RedisHostPort[]; tls: boolean } & RedisCredentials)
  | ({ kind: 'sentinel'; sentinels: RedisHostPort[]; masterName: string; db: number; tls: boolean } & RedisCredentials);

/** What `redis_url` accepts, for error messages and the configuration reference. */
export const REDIS_URL_FORMS = 'redis://[user:password@]host:port[/db], redis-cluster://[user:password@]host:port,host:port,... or redis-sentinel://[user:password@]host:port,host:port,.../master-name[/db] (rediss, rediss-cluster, rediss-sentinel: TLS)';

const MULTI_HOST = /^(rediss?)-(cluster|sentinel):\/\/(.*)$/s;
/** Sentinel master names as Sentinel itself accepts them in practice. */
const MASTER_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/** The deployment `raw` names; throws InvalidValue (the config loader's CONFIG_INVALID_VALUE) when malformed. */
export function parseRedisUrl(raw: string): RedisTarget {
  const v = raw.trim();
  if (v.startsWith('redis://') || v.startsWith('rediss://')) {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      throw new InvalidValue('not a valid redis:// URL');
    }
    if (url.hostname === '') throw new InvalidValue('the redis:// URL names no host');
    if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,2}$/.test(url.pathname)) throw new InvalidValue('the path of a redis:// URL is a database number');
    return { kind: 'server', url: v, tls: url.protocol === 'rediss:' };
  }
  const m = MULTI_HOST.exec(v);
  if (!m) throw new InvalidValue(`not one of ${REDIS_URL_FORMS}`);
  const [, scheme, kind, rest] = m as unknown as [string, string, 'cluster' | 'sentinel', string];
  const tls = scheme === 'rediss';
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const credentials = at < 0 ? {} : parseCredentials(authority.slice(0, at));
  const hosts = parseHostList(at < 0 ? authority : authority.slice(at + 1), kind === 'cluster' ? 6379 : 26379);
  if (kind === 'cluster') {
    if (path !== '') throw new InvalidValue('a redis-cluster:// URL has no path (the cluster has no databases but 0)');
    return { kind, nodes: hosts, tls, ...credentials };
  }
  const [masterName = '', db = '0', ...extra] = path.split('/');
  if (extra.length > 0 || !MASTER_NAME.test(masterName)) throw new InvalidValue('a redis-sentinel:// URL ends with /master-name (letters, digits, . _ -), then optionally /db');
  if (!/^\d{1,2}$/.test(db)) throw new InvalidValue('the database after the master name is a number');
  return { kind, sentinels: hosts, masterName, db: Number(db), tls, ...credentials };
}

function parseCredentials(userinfo: string): RedisCredentials {
  const colon = userinfo.indexOf(':');
  const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name');
  const password = colon < 0 ? undefined : decode(userinfo.slice(colon + 1), 'password');
  // `redis://:password@host` is the usual way to give a password alone (the default user).
  return { ...(user !== '' ? { username: user } : {}), ...(password !== undefined && password !== '' ? { password } : {}) };
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new InvalidValue(`the ${what} is not correctly percent-encoded`);
  }
}

function parseHostList(text: string, defaultPort: number): RedisHostPort[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === '')) throw new InvalidValue('the host list is empty or has an empty entry (host:port,host:port)');
  const seen = new Set<string>();
  const hosts: RedisHostPort[] = [];
  for (const item of items) {
    const hp = parseHostPort(item, defaultPort);
    const key = `${hp.host}:${hp.port}`;
    if (!seen.has(key)) hosts.push(hp);
    seen.add(key);
  }
  return hosts;
}

function parseHostPort(item: string, defaultPort: number): RedisHostPort {
  // [v6]:port, [v6], host:port, host
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(item) ?? /^([A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(item);
  if (!m) throw new InvalidValue('a host in the list is not host:port (a name, an IPv4 address or a [bracketed] IPv6 address, then a port)');
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) throw new InvalidValue('a port in the host list is out of range 1 to 65535');
  return { host: m[1]!, port };
}

/** The URL with its password replaced by `***`, for logs and messages. */
export function redactRedisUrl(raw: string): string {
  return raw.replace(/^([a-z-]+:\/\/)([^@/]*)@/i, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`}@`;
  });
}
