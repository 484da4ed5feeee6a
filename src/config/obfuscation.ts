import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * `OBF:` values keep a secret from being read over a shoulder or grepped out of a config file.
 * It is obfuscation, not protection: the key below is public, so anyone with the file and
 * Cohort can recover the secret. File permissions are what protect it.
 *
 * Format: `OBF:` + base64url(iv[12] || AES-256-GCM(ciphertext) || tag[16]). The GCM tag makes
 * a mistyped or truncated value fail to decode instead of yielding a wrong secret, and the
 * random iv makes two obfuscations of one secret differ, so configs cannot be compared by eye.
 */
export const OBFUSCATION_PREFIX = 'OBF:';

const KEY = createHash('sha256').update('cohort/obfuscate/v1').digest();
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function obfuscate(plain: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', KEY, iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return OBFUSCATION_PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

export function isObfuscated(value: string): boolean {
  return value.startsWith(OBFUSCATION_PREFIX);
}

/** Decodes an `OBF:` value; returns undefined when it is not a valid obfuscation. */
export function deobfuscate(value: string): string | undefined {
  if (!isObfuscated(value)) return undefined;
  const encoded = value.slice(OBFUSCATION_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
  const raw = Buffer.from(encoded, 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', KEY, raw.subarray(0, IV_BYTES));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
