import { renameSync, writeFileSync } from 'node:fs';

/** Writes a file atomically (temp file, then rename) with owner-only permissions. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}
