import { chmodSync, mkdirSync, openSync, closeSync, readFileSync, statSync, writeFileSync, accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { CohortError } from '../core/errors.js';
import { randomToken } from '../core/ids.js';

/** File in the data directory holding the management API credential. */
export const MANAGE_CREDENTIAL_FILE = 'manage.credential';

/** Creates the data directory (owner-only) if needed and checks it is writable. */
export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new CohortError('NODE_DATA_DIR_UNUSABLE', `data directory ${dir} is not usable: ${(err as Error).message}`, { dir });
  }
}

/**
 * Returns the management credential, creating it at first start.
 *
 * The file is created with O_EXCL and mode 0600, so two processes racing on one data
 * directory cannot both write one, and it is never readable by other users even briefly.
 * A credential found with looser permissions is tightened, and the caller is told.
 */
export function loadOrCreateManageCredential(dir: string): { credential: string; created: boolean; tightened: boolean } {
  const path = join(dir, MANAGE_CREDENTIAL_FILE);
  try {
    const fd = openSync(path, 'wx', 0o600);
    const credential = randomToken(32);
    writeFileSync(fd, `${credential}\n`);
    closeSync(fd);
    return { credential, created: true, tightened: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new CohortError('NODE_DATA_DIR_UNUSABLE', `cannot write ${path}: ${(err as Error).message}`, { path });
    }
  }
  const credential = readManageCredential(dir);
  let tightened = false;
  if ((statSync(path).mode & 0o077) !== 0) {
    chmodSync(path, 0o600);
    tightened = true;
  }
  return { credential, created: false, tightened };
}

/** Reads the management credential of a node's data directory (used by the CLI too). */
export function readManageCredential(dir: string): string {
  const path = join(dir, MANAGE_CREDENTIAL_FILE);
  const credential = readFileSync(path, 'utf8').trim();
  if (credential.length === 0) throw new CohortError('NODE_DATA_DIR_UNUSABLE', `${path} is empty`, { path });
  return credential;
}

export { writeFileAtomic } from '../core/files.js';
