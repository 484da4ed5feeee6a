import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../src/cli/free-port.js';

export type ConfigSections = Record<string, Record<string, string>>;

export const TEST_SECRET = 'a-test-secret-that-is-long-and-random-enough';

/**
 * The cluster id of the nodes this test process starts: one per process, so that a node of one
 * test file never joins another's, which runs beside it with the same secret. (A survivor keeps
 * dialling the port of a member killed in its test; another file may start a node on that port
 * meanwhile, and with the same id and secret the two clusters would merge.)
 */
export const TEST_CLUSTER_ID = `test-cluster-${process.pid}`;

/** INI text for the given sections, in order. */
export function configText(sections: ConfigSections): string {
  return Object.entries(sections)
    .map(([name, keys]) => [`[${name}]`, ...Object.entries(keys).map(([k, v]) => `${k} = ${v}`)].join('\n'))
    .join('\n\n') + '\n';
}

/**
 * A valid node configuration on free loopback ports, with `overrides` merged in
 * (a key set to undefined is left out).
 */
export async function validConfig(id: string, role: 'console' | 'replica' | 'engine', overrides: Record<string, Record<string, string | undefined>> = {}): Promise<ConfigSections> {
  const base: Record<string, Record<string, string | undefined>> = {
    node: { id, role, data_dir: `./${id}` },
    cluster: { id: TEST_CLUSTER_ID, bind: `127.0.0.1:${await freePort()}`, secret_key: TEST_SECRET, profile: 'local', peers: '' },
    http: { manage: `127.0.0.1:${await freePort()}`, admin: `127.0.0.1:${await freePort()}`, runtime: `127.0.0.1:${await freePort()}` },
    log: { level: 'info', format: 'json' },
  };
  // An engine in inline mode also listens on its proxy port.
  if (role === 'engine' && overrides.node?.mode === 'inline') base.http!.proxy = `127.0.0.1:${await freePort()}`;
  for (const [section, keys] of Object.entries(overrides)) base[section] = { ...(base[section] ?? {}), ...keys };
  const result: ConfigSections = {};
  for (const [section, keys] of Object.entries(base)) {
    result[section] = Object.fromEntries(Object.entries(keys).filter((e): e is [string, string] => e[1] !== undefined));
  }
  return result;
}

export function writeConfig(dir: string, name: string, sections: ConfigSections): string {
  const file = join(dir, name);
  writeFileSync(file, configText(sections));
  return file;
}
