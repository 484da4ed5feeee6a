/**
 * The engine's saved copy of the configuration, DATA_DIR/applied-config.json, and the checks
 * every copy passes before the engine applies it.
 *
 * An engine serves with this file while its console is away, also across its own restarts, so
 * the file is trusted only when it proves it was written by an engine of this cluster and not
 * changed since: it carries an HMAC-SHA-256 (`mac`) over the canonical JSON of everything
 * else, keyed with HKDF-SHA-256 of the cluster secret under a label of its own (so the key is
 * good for nothing else, and differs between clusters sharing a secret). A file that fails is
 * refused whatever it holds, even valid JSON that the schemas accept (a lock-out policy
 * loosened by hand). Rotating the secret keeps saved files usable: the integrity code is
 * checked against `secret_key` and every `previous_secret_keys`, as the handshake does.
 *
 * The file holds client secrets (an API's OpenID client secret, its upstream token client) in
 * the clear inside, so it is also encrypted as a whole (format 2): AES-256-GCM under a key
 * derived from the integrity key by HKDF under another label, with a random 96-bit IV. Copying
 * the data directory alone (a backup, a volume snapshot) shows nothing of it; the key needs the
 * cluster secret of the node's configuration. A file of format 1 (clear, written by an earlier
 * version) is still read, its integrity code checked, and written encrypted at the next save.
 *
 * Every document, from the file or from the console, must also match its content digest (the
 * SHA-256 of its canonical JSON the console stored with it) and its section's schema.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../config/secret.js';
import { CohortError } from '../core/errors.js';
import { canonicalJson, contentHash } from '../repository/canonical-json.js';
import type { ConfigDocument } from '../repository/repository.js';

export const APPLIED_CONFIG_FILE = 'applied-config.json';
/** The suffix of a refused file, kept for inspection rather than deleted. */
export const DAMAGED_SUFFIX = '.damaged';

/** The layout of the signed configuration (the clear, inner layer): a file without it (or with another) is not trusted. */
const FORMAT = 1;
/** The layout of the encrypted file around it. */
const ENCRYPTED_FORMAT = 2;
const KEY_LABEL = 'cohort/v1/applied-config';
const ENCRYPTION_LABEL = 'cohort/v1/applied-config-encryption';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface AppliedConfig {
  epoch: number;
  version: number;
  appliedAt: number;
  sections: Record<string, ConfigDocument>;
}

/** Schema problems of one section's content; empty when it matches (or the section is not known here). */
export type SectionCheck = (section: string, content: unknown) => string[];

/**
 * The keys the file's integrity code is made with: the first (from `secret_key`) signs, every
 * one verifies.
 */
export function appliedConfigKeys(clusterId: string, secrets: readonly Secret[]): Buffer[] {
  return secrets.map((s) => Buffer.from(hkdfSync('sha256', Buffer.from(s.reveal(), 'utf8'), KEY_LABEL, clusterId, 32)));
}

/** The signed configuration (format 1, clear): the configuration with its integrity code. */
export function signAppliedConfig(config: AppliedConfig, key: Buffer): string {
  const body = { format: FORMAT, epoch: config.epoch, version: config.version, appliedAt: config.appliedAt, sections: config.sections };
  return JSON.stringify({ ...body, mac: mac(body, key) });
}

/** The file's text (format 2): the signed configuration, encrypted under a key derived from `key`. */
export function sealAppliedConfig(config: AppliedConfig, key: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', encryptionKey(key), iv);
  cipher.setAAD(Buffer.from(KEY_LABEL, 'utf8'));
  const data = Buffer.concat([cipher.update(signAppliedConfig(config, key), 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return JSON.stringify({ format: ENCRYPTED_FORMAT, iv: iv.toString('base64url'), data: data.toString('base64url') });
}

function encryptionKey(key: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, ENCRYPTION_LABEL, '', 32));
}

/** The signed text inside an encrypted file, with the first of `keys` that opens it; undefined when none does. */
function decrypt(file: Record<string, unknown>, keys: readonly Buffer[]): string | undefined {
  if (typeof file.iv !== 'string' || typeof file.data !== 'string') return undefined;
  const iv = Buffer.from(file.iv, 'base64url');
  const data = Buffer.from(file.data, 'base64url');
  if (iv.length !== IV_BYTES || data.length < TAG_BYTES) return undefined;
  for (const key of keys) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', encryptionKey(key), iv);
      decipher.setAAD(Buffer.from(KEY_LABEL, 'utf8'));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      // Not this key (or changed bytes): the next one.
    }
  }
  return undefined;
}

/**
 * The configuration in `text`, once its integrity code matches one of `keys` and every
 * document passes `documentProblems`; ENGINE_CONFIG_CACHE_INVALID (saying why) otherwise.
 */
export function openAppliedConfig(text: string, keys: readonly Buffer[], check: SectionCheck): AppliedConfig {
  const refuse = (why: string): CohortError => new CohortError('ENGINE_CONFIG_CACHE_INVALID', why);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw refuse('not JSON (cut short?)');
  }
  if (!isRecord(parsed)) throw refuse('not an applied configuration');
  if (parsed.format === ENCRYPTED_FORMAT) {
    const inner = decrypt(parsed, keys);
    if (inner === undefined) throw refuse('the file cannot be decrypted: it was changed, or written with another cluster secret');
    try {
      parsed = JSON.parse(inner);
    } catch {
      throw refuse('not an applied configuration');
    }
    if (!isRecord(parsed)) throw refuse('not an applied configuration');
  }
  const { mac: code, ...body } = parsed;
  if (body.format !== FORMAT || typeof code !== 'string') throw refuse('no integrity code (written by an earlier version, or not by an engine)');
  if (typeof body.epoch !== 'number' || typeof body.version !== 'number' || typeof body.appliedAt !== 'number' || !isRecord(body.sections)) {
    throw refuse('not an applied configuration');
  }
  const given = Buffer.from(code, 'hex');
  // Every key is tried (constant time each), whichever matches.
  let ok = false;
  for (const key of keys) {
    const expected = Buffer.from(mac(body, key), 'hex');
    ok = (given.length === expected.length && timingSafeEqual(given, expected)) || ok;
  }
  if (!ok) throw refuse('the integrity code does not match: the file was changed, or written with another cluster secret');
  const sections = body.sections as Record<string, ConfigDocument>;
  const problems = documentProblems(sections, check);
  if (problems.length > 0) throw refuse(problems.join('; '));
  return { epoch: body.epoch, version: body.version, appliedAt: body.appliedAt, sections };
}

/**
 * What is wrong with the documents of a configuration (from the console or the file): each
 * must be a document of the section it is filed under, whose content matches its digest and
 * its section's schema. Empty: nothing.
 */
export function documentProblems(sections: Record<string, unknown>, check: SectionCheck): string[] {
  const problems: string[] = [];
  for (const [name, doc] of Object.entries(sections)) {
    if (!isRecord(doc) || doc.section !== name || typeof doc.version !== 'number' || typeof doc.epoch !== 'number' || typeof doc.hash !== 'string') {
      problems.push(`section ${name}: not a configuration document`);
      continue;
    }
    let digest: string;
    try {
      digest = contentHash(doc.content);
    } catch {
      problems.push(`section ${name}: content is not JSON`);
      continue;
    }
    if (digest !== doc.hash) {
      problems.push(`section ${name}: content does not match its digest`);
      continue;
    }
    for (const e of check(name, doc.content)) problems.push(`section ${name}: ${e}`);
  }
  return problems;
}

function mac(body: Record<string, unknown>, key: Buffer): string {
  return createHmac('sha256', key).update(canonicalJson(body)).digest('hex');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
