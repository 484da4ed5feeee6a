/**
 * A stand-in for DNS in `cohort start` processes of a test, loaded with
 * `NODE_OPTIONS=--import=<this file>` (see `fakeDnsEnv`): host names listed in the JSON file
 * that COHORT_TEST_DNS_FILE names (`{"name": ["127.0.0.1", ...]}`) resolve to those addresses,
 * read again at every lookup so that a test can change the answers while the nodes run; other
 * names go to the system's resolver. Only the promise API's `lookup` is replaced, which is
 * what the node resolves its configured peers with; nothing in the product reads the file.
 */
import dnsPromises from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const FILE_ENV = 'COHORT_TEST_DNS_FILE';

/** The environment that makes a `cohort start` process resolve through the answers in `file`. */
export function fakeDnsEnv(file: string): Record<string, string> {
  const preload = `--import=${import.meta.url}`;
  return { NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(' '), [FILE_ENV]: file };
}

const file = process.env[FILE_ENV];
if (file) {
  const real = dnsPromises.lookup.bind(dnsPromises);
  const fake = async (host: string, options?: { all?: boolean }): Promise<unknown> => {
    const answers = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string[]>;
    const listed = answers[host];
    if (!listed) return real(host, options ?? {});
    if (listed.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
    const entries = listed.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    return options?.all ? entries : entries[0];
  };
  (dnsPromises as unknown as { lookup: typeof fake }).lookup = fake;
  syncBuiltinESMExports();
}
