import type { Mode, Role, TlsListener } from '../../config/schema.js';

/** One node of a local cluster as `cohort up` lays it out. */
export interface LocalNodePlan {
  id: string;
  role: Role;
  configFile: string;
  logFile: string;
  cluster: number;
  manage: number;
  /** Admin port (console) or runtime port (engine). */
  http: number;
  /** How the cluster's engines enforce access decisions (the same on every node). */
  mode: Mode;
  /** Inline mode: the engine's proxy port. */
  proxy?: number;
  /** `cohort up --tls`: the listeners that serve HTTPS (all of them, unless the file was edited); empty: plain HTTP. */
  httpsListeners: TlsListener[];
  /** `cohort up --state redis --redis-url URL`: an engine's state provider is the Redis at this URL; absent: the grid. */
  redisUrl?: string;
}

export interface LocalClusterSecrets {
  clusterId: string;
  /** `OBF:` form of the cluster secret, as written in every config file. */
  secretKey: string;
  adminUser: string;
  apiKey: string;
}

const HOST = '127.0.0.1';

/**
 * The INI text of one node of a local cluster: `local` profile, loopback only, SQLite. An
 * engine is given `consolePublicKey` (the console authority's, made before the console's first
 * start), so it applies only configurations the console signed from its very first contact.
 */
export function localNodeConfigText(node: LocalNodePlan, seed: LocalNodePlan | undefined, secrets: LocalClusterSecrets, consolePublicKey?: string): string {
  const httpKey = node.role === 'engine' ? 'runtime' : 'admin';
  return [
    `; Written by "cohort up". Edit freely; "cohort up" reuses this file on its next run.`,
    '[node]',
    `id = ${node.id}`,
    `role = ${node.role}`,
    `mode = ${node.mode}`,
    `data_dir = ./${node.id}`,
    '',
    '[cluster]',
    `id = ${secrets.clusterId}`,
    `bind = ${HOST}:${node.cluster}`,
    `peers = ${seed && seed.id !== node.id ? `${HOST}:${seed.cluster}` : ''}`,
    `secret_key = ${secrets.secretKey}`,
    ...(node.role === 'engine' && consolePublicKey !== undefined ? [`console_public_key = ${consolePublicKey}`] : []),
    'profile = local',
    '',
    '[http]',
    `${httpKey} = ${HOST}:${node.http}`,
    ...(node.proxy !== undefined ? [`proxy = ${HOST}:${node.proxy}`] : []),
    `manage = ${HOST}:${node.manage}`,
    ...(node.role === 'engine' ? [`api_keys = ${secrets.apiKey}`] : []),
    '',
    // The files of DIR/tls (local-ca.ts), shared by every node of the local cluster.
    ...(node.httpsListeners.length > 0 ? ['[tls]', 'cert_file = ./tls/node.pem', 'key_file = ./tls/node-key.pem', 'ca_file = ./tls/ca.pem', ''] : []),
    // Keys are prefixed with the cluster id, so several local clusters can share one Redis.
    ...(node.role === 'engine' && node.redisUrl !== undefined ? ['[state]', 'provider = redis', `redis_url = ${node.redisUrl}`, ''] : []),
    '[log]',
    'format = json',
    '',
  ].join('\n');
}

export function localUrls(node: LocalNodePlan): { cluster: string; manage: string; admin?: string; runtime?: string; proxy?: string } {
  const url = (listener: TlsListener, port: number): string => `${node.httpsListeners.includes(listener) ? 'https' : 'http'}://${HOST}:${port}`;
  return {
    cluster: `${HOST}:${node.cluster}`,
    manage: url('manage', node.manage),
    ...(node.role === 'engine' ? { runtime: url('runtime', node.http) } : { admin: url('admin', node.http) }),
    ...(node.proxy !== undefined ? { proxy: url('proxy', node.proxy) } : {}),
  };
}
