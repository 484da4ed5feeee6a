import { readFileSync } from 'node:fs';

/**
 * The running package's version, read once from package.json so that the CLI, the management
 * API and (later) the join handshake all report the same string.
 */
function readPackageVersion(): string {
  // dist/src/core/version.js and src/core/version.ts both sit three levels below the package root.
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cohort' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  throw new Error('cohort: cannot find package.json to read the version');
}

export const COHORT_VERSION: string = process.env.COHORT_VERSION_OVERRIDE ?? readPackageVersion();

export interface ParsedVersion {
  major: number;
  minor: number;
  patch: number;
}

/** Parses `MAJOR.MINOR.PATCH` (a pre-release or build suffix is ignored). */
export function parseVersion(v: string): ParsedVersion | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(v);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}
