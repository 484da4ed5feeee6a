/**
 * Secrets at rest: the values of stored configuration documents that are credentials (the
 * HTTP headers of schedules, the client secrets of APIs) are kept in the repository sealed,
 * never in clear, and shown redacted to those who may only read.
 *
 * - A sealed value is a versioned envelope, a string so that it takes the place of the clear
 *   string in the document: `$cohort-sealed$v1$<key id>$<base64url(iv | ciphertext | tag)>`,
 *   AES-256-GCM (node:crypto) with a random 96-bit IV. The associated data names the place of
 *   the value (section, the API or schedule, the field), so a sealed value moved to another
 *   place, or any changed byte, fails the tag check: SECRET_TAMPERED, never a wrong value.
 * - The keys are in DATA_DIR/secrets.key (0600), one per line as base64url, the first sealing
 *   and every one opening (an envelope names its key by id: the first 16 hex digits of the
 *   key's SHA-256). A value sealed with a key this node does not hold: SECRET_KEY_UNKNOWN.
 * - Which values of a document are secrets is the business of the layer that owns the
 *   document (a SecretWalker); this file only seals, opens and redacts what it is shown.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CohortError } from './errors.js';
import { writeFileAtomic } from './files.js';

export const SECRETS_KEY_FILE = 'secrets.key';

/** What readers who may not see a secret get in its place; saved back, it keeps the stored secret. */
export const REDACTED = '********';

const PREFIX = '$cohort-sealed$';
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Keys kept in a ring: the current one and those a node adopted before (their values still open). */
const MAX_KEYS = 16;

/** Whether `value` is a sealed envelope (of any version); its content is not checked. */
export function isSealed(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(PREFIX);
}

/** The id an envelope names its key by. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

function aad(place: string): Buffer {
  return Buffer.from(`cohort/v1/sealed-secret\n${place}`, 'utf8');
}

/**
 * The keys one node seals and opens secrets with. The first seals; every one opens. A ring
 * without a key opens nothing sealed and seals nothing (SECRET_KEY_UNKNOWN): an engine given
 * the repository but not the key file.
 */
export class SecretKeyring {
  private keys: Array<{ id: string; key: Buffer }>;

  /** `file`: where the ring is written when a key is added (adopt, generate); none: in memory only. */
  constructor(keys: readonly Buffer[] = [], private readonly file?: string) {
    this.keys = dedupe(keys).map((key) => ({ id: keyId(key), key }));
  }

  /** The id of the key that seals; undefined without one. */
  get currentId(): string | undefined {
    return this.keys[0]?.id;
  }

  /** The key that seals (a console hands it to its replica, role-proofs.ts). */
  get currentKey(): Buffer | undefined {
    return this.keys[0]?.key;
  }

  get ids(): string[] {
    return this.keys.map((k) => k.id);
  }

  /** `clear` sealed for `place` (which must be given again to open it). */
  seal(clear: string, place: string): string {
    const current = this.keys[0];
    if (!current) throw new CohortError('SECRET_KEY_UNKNOWN', `cannot seal the secret at ${place}: this node holds no key for secrets at rest (DATA_DIR/${SECRETS_KEY_FILE})`, { place });
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', current.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(place));
    const body = Buffer.concat([iv, cipher.update(clear, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${PREFIX}${VERSION}$${current.id}$${body.toString('base64url')}`;
  }

  /**
   * The clear text of `value` sealed for `place`; a value that is not sealed (saved before
   * secrets were sealed) is returned as it is. SECRET_TAMPERED when the envelope is malformed
   * or fails its tag (changed, or moved from another place); SECRET_KEY_UNKNOWN when its key
   * is not in this ring.
   */
  open(value: string, place: string): string {
    if (!isSealed(value)) return value;
    const tampered = (why: string): CohortError =>
      new CohortError('SECRET_TAMPERED', `the sealed secret at ${place} does not open: ${why}; it is not used (save the secret again)`, { place });
    const [version, id, body, extra] = value.slice(PREFIX.length).split('$');
    if (version !== VERSION || id === undefined || body === undefined || extra !== undefined || !/^[0-9a-f]{16}$/.test(id) || !/^[A-Za-z0-9_-]+$/.test(body)) {
      throw tampered('not an envelope this version writes');
    }
    const key = this.keys.find((k) => k.id === id);
    if (!key) {
      throw new CohortError(
        'SECRET_KEY_UNKNOWN',
        `the secret at ${place} was sealed with key ${id}, which this node does not hold (${this.keys.length === 0 ? 'it holds none' : `it holds ${this.ids.join(', ')}`}): copy DATA_DIR/${SECRETS_KEY_FILE} from the console, or save the secret again`,
        { place, keyId: id },
      );
    }
    const raw = Buffer.from(body, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw tampered('too short');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(place));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw tampered('its authentication tag does not match (altered, or sealed for another place)');
    }
  }

  /**
   * Makes `key` the one that seals, keeping the others to open what they sealed, and writes the
   * ring to its file. False when it already was the current key.
   */
  adopt(key: Buffer): boolean {
    if (key.length !== KEY_BYTES) throw new CohortError('NODE_SECRETS_KEY_INVALID', `a key for secrets at rest has ${KEY_BYTES} bytes, not ${key.length}`);
    if (this.keys[0]?.id === keyId(key)) return false;
    this.keys = dedupe([key, ...this.keys.map((k) => k.key)]).slice(0, MAX_KEYS).map((k) => ({ id: keyId(k), key: k }));
    this.save();
    return true;
  }

  /** A new random key, made the one that seals (a console's first start, a promotion without one). */
  generate(): void {
    this.adopt(randomBytes(KEY_BYTES));
  }

  private save(): void {
    if (!this.file) return;
    const lines = [
      '# Cohort: keys of the secrets stored sealed in the repository (docs/operations.md, "Secrets at rest").',
      '# The first seals, every one opens. Owner-only; losing every copy loses the secrets sealed with it.',
      ...this.keys.map((k) => k.key.toString('base64url')),
    ];
    writeFileAtomic(this.file, `${lines.join('\n')}\n`);
  }
}

function dedupe(keys: readonly Buffer[]): Buffer[] {
  const seen = new Set<string>();
  return keys.filter((k) => {
    const id = keyId(k);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * The ring of DATA_DIR/secrets.key; created there with a new key when the file is absent and
 * `create` is set (a console's first start); empty when absent otherwise. A file that holds
 * something else than keys stops the node (NODE_SECRETS_KEY_INVALID): sealing with a new key
 * would leave every stored secret unreadable.
 */
export function loadSecretKeyring(dataDir: string, create: boolean): SecretKeyring {
  const path = join(dataDir, SECRETS_KEY_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CohortError('NODE_SECRETS_KEY_INVALID', `cannot read ${path}: ${(err as Error).message}`, { path });
    }
    const ring = new SecretKeyring([], path);
    if (create) ring.generate();
    return ring;
  }
  const keys: Buffer[] = [];
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) return;
    const key = /^[A-Za-z0-9_-]+$/.test(l) ? Buffer.from(l, 'base64url') : undefined;
    if (!key || key.length !== KEY_BYTES) throw new CohortError('NODE_SECRETS_KEY_INVALID', `${path} line ${i + 1} is not a key (${KEY_BYTES} bytes as base64url); restore the file from the console's data directory`, { path });
    keys.push(key);
  });
  if (keys.length === 0) throw new CohortError('NODE_SECRETS_KEY_INVALID', `${path} holds no key; restore it from the console's data directory (or delete it on a console that never sealed a secret)`, { path });
  return new SecretKeyring(keys, path);
}

/**
 * The secrets of one kind of document: calls `fn` with every secret string and where it is
 * (`place`: stable across versions, e.g. `apis/<api id>/login/clientSecret`; `pointer`: the
 * JSON Pointer in this document, for error messages) and returns a copy of the document with
 * each replaced by what `fn` returned. Shapes it does not expect are left as they are.
 */
export type SecretWalker = (content: unknown, fn: (value: string, place: string, pointer: string) => string) => unknown;

/** Every secret of `content` opened (clear). */
export function openSecrets(walk: SecretWalker, content: unknown, ring: SecretKeyring): unknown {
  return walk(content, (value, place) => ring.open(value, place));
}

/** Every secret of `content` replaced by REDACTED; needs no key. */
export function redactSecrets(walk: SecretWalker, content: unknown): unknown {
  return walk(content, () => REDACTED);
}

/**
 * Every clear secret of `content` sealed. A secret whose clear value is the one `previous` (the
 * stored version before) holds at the same place keeps that envelope, so saving a document
 * unchanged stores it unchanged (same content digest, audited as unchanged).
 */
export function sealSecrets(walk: SecretWalker, content: unknown, ring: SecretKeyring, previous?: unknown): unknown {
  const before = new Map<string, string>();
  if (previous !== undefined) walk(previous, (value, place) => (before.set(place, value), value));
  return walk(content, (value, place) => {
    if (isSealed(value)) return value;
    const old = before.get(place);
    if (old !== undefined && isSealed(old)) {
      try {
        if (ring.open(old, place) === value) return old;
      } catch {
        // a stored value that does not open is replaced by the new one, sealed anew
      }
    }
    return ring.seal(value, place);
  });
}

/**
 * An incoming document (a save) with each REDACTED placeholder replaced by the secret `stored`
 * holds at the same place, so a document read redacted and saved back keeps its secrets. Every
 * problem (a placeholder with nothing stored at its place, an envelope that does not open
 * here) is listed, by JSON Pointer; the document is usable only when the list is empty.
 */
export function keepStoredSecrets(walk: SecretWalker, incoming: unknown, stored: unknown, ring: SecretKeyring): { content: unknown; problems: string[] } {
  const held = new Map<string, string>();
  if (stored !== undefined) walk(stored, (value, place) => (held.set(place, value), value));
  const problems: string[] = [];
  const content = walk(incoming, (value, place, pointer) => {
    if (value === REDACTED) {
      const kept = held.get(place);
      if (kept === undefined || kept === REDACTED) problems.push(`${pointer}: ${JSON.stringify(REDACTED)} stands for the stored secret, but none is stored here; write the secret itself`);
      return kept ?? value;
    }
    if (isSealed(value)) {
      try {
        ring.open(value, place);
      } catch (err) {
        problems.push(`${pointer}: a sealed value that does not open on this console (${(err as CohortError).code})`);
      }
    }
    return value;
  });
  return { content, problems };
}
