import type { TestContext } from 'node:test';
import type { ClusterInfo, ClusterInfoNode } from '../../src/node/cluster-info.js';
import { manageRequest, manageTargetOfFile } from '../../src/cli/manage-client.js';
import { runCohort, type CohortProcess } from './processes.js';
import { validConfig, writeConfig, type ConfigSections } from './node-config.js';

/** One `cohort start` process of a test cluster. */
export interface TestNode {
  id: string;
  file: string;
  config: ConfigSections;
  /** Its cluster address, `127.0.0.1:PORT`. */
  address: string;
  proc: CohortProcess;
}

export interface StartNodeOptions {
  role?: 'console' | 'replica' | 'engine';
  /** Cluster address of a member to join through; none for the first node. */
  peers?: string;
  overrides?: Record<string, Record<string, string | undefined>>;
  env?: Record<string, string>;
  /** Resolve once the process has started (default) or not wait at all. */
  wait?: boolean;
  /** A command that execs the CLI, such as `ip netns exec NS` (see processes.ts runCohort). */
  prefix?: string[];
}

/** Writes a config on free ports and runs `cohort start`; the process is killed when the test ends. */
export async function startNode(t: Pick<TestContext, 'after'>, dir: string, id: string, options: StartNodeOptions = {}): Promise<TestNode> {
  const config = await validConfig(id, options.role ?? 'engine', { ...options.overrides, cluster: { peers: options.peers ?? '', ...options.overrides?.cluster } });
  const file = writeConfig(dir, `${id}.ini`, config);
  const proc = runCohort(t, ['start', '-c', file], { env: options.env ?? {}, ...(options.prefix ? { prefix: options.prefix } : {}) });
  if (options.wait !== false) await proc.waitForOutput(new RegExp(`"msg":"\\w+ ${id} started"`), 20_000);
  return { id, file, config, address: config.cluster!.bind!, proc };
}

/** GET /manage/v1/cluster of the node whose configuration is `file`. */
export function clusterInfoOf(file: string): Promise<ClusterInfo> {
  return manageRequest<ClusterInfo>(manageTargetOfFile(file), 'GET', '/manage/v1/cluster', undefined, 2000);
}

export function stateOf(info: ClusterInfo, id: string): ClusterInfoNode['state'] | undefined {
  return info.nodes.find((n) => n.id === id)?.state;
}

/** An error's message and its causes' (fetch says only "fetch failed"; the cause says why). */
function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: unknown; code?: unknown; cause?: unknown } | undefined; e && parts.length < 4; e = e.cause as typeof e) {
    parts.push(`${String(e.message ?? e)}${typeof e.code === 'string' ? ` (${e.code})` : ''}`);
  }
  return parts.join(': ');
}

/**
 * Polls `probe` every `everyMs` until `accept` holds; returns the accepted value and how long
 * it took (ms). Throws with the last value seen after `timeoutMs`.
 */
export async function waitUntil<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number, everyMs = 25): Promise<{ value: T; elapsedMs: number }> {
  const start = performance.now();
  let last: T | undefined;
  let lastError: unknown;
  while (performance.now() - start < timeoutMs) {
    try {
      last = await probe();
      if (accept(last)) return { value: last, elapsedMs: performance.now() - start };
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}${lastError ? `; last error: ${errorText(lastError)}` : ''}`);
}
