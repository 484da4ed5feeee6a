/**
 * The console authority: the proof that a node is the cluster's console (or a replica the
 * console admitted), which holding the cluster secret alone does not give.
 *
 * - The authority is an Ed25519 key pair (node:crypto). The console creates it at its first
 *   start in DATA_DIR/console-authority.key (PKCS#8 PEM, 0600). An operator admits a replica
 *   by copying that file into the replica's data directory before starting it (a replica
 *   without it pulls nothing and says so); a promoted replica and a demoted console keep it, so
 *   the proof moves with the role and engines need not learn a new key.
 * - Engines pin the authority's public key at their first proven contact with a console
 *   (DATA_DIR/console-authority.pub), or from `[cluster] console_public_key` when it is set,
 *   and from then on apply only configurations signed by that key.
 * - What is signed is always a statement: a purpose (what the signature is for), the nonce
 *   or time of the request it answers, and the canonical JSON of the content, so a signature
 *   cannot be replayed for another purpose, another request or other content.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CohortError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';
import { canonicalJson } from '../repository/canonical-json.js';

export const AUTHORITY_KEY_FILE = 'console-authority.key';
export const PINNED_KEY_FILE = 'console-authority.pub';

export interface ConsoleAuthority {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as text (base64 of its DER SubjectPublicKeyInfo): what engines pin. */
  publicKeyText: string;
}

/** A signature over a statement, with the public key that made it. */
export interface AuthorityProof {
  key: string;
  signature: string;
}

export function publicKeyText(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** The public key of `text` (as publicKeyText writes it); undefined when it is not an Ed25519 key. */
export function parsePublicKey(text: string): KeyObject | undefined {
  try {
    const key = createPublicKey({ key: Buffer.from(text.trim(), 'base64'), format: 'der', type: 'spki' });
    return key.asymmetricKeyType === 'ed25519' ? key : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The authority in `dataDir`: read from its file; created there when absent and `create` is
 * set (a console's first start); undefined when absent otherwise (a replica not admitted).
 */
export function loadAuthority(dataDir: string, create: boolean): ConsoleAuthority | undefined {
  const path = join(dataDir, AUTHORITY_KEY_FILE);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (!create) return undefined;
    const { privateKey } = generateKeyPairSync('ed25519');
    pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileAtomic(path, pem);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new CohortError('NODE_AUTHORITY_INVALID', `${path} holds no private key; copy it again from the console's data directory`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new CohortError('NODE_AUTHORITY_INVALID', `${path} is not an Ed25519 key`);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, publicKeyText: publicKeyText(publicKey) };
}

function statement(purpose: string, context: unknown, content: unknown): Buffer {
  return Buffer.from(canonicalJson({ purpose, context, content }), 'utf8');
}

/** Signs `content` for `purpose` in `context` (a nonce, a time, who asks whom). */
export function signStatement(authority: ConsoleAuthority, purpose: string, context: unknown, content: unknown): AuthorityProof {
  return { key: authority.publicKeyText, signature: sign(null, statement(purpose, context, content), authority.privateKey).toString('base64') };
}

/** Whether `proof` is a signature by `key` of `content` for `purpose` in `context`. */
export function verifyStatement(key: KeyObject, proof: unknown, purpose: string, context: unknown, content: unknown): boolean {
  if (typeof proof !== 'object' || proof === null || typeof (proof as AuthorityProof).signature !== 'string') return false;
  try {
    return verify(null, statement(purpose, context, content), key, Buffer.from((proof as AuthorityProof).signature, 'base64'));
  } catch {
    return false;
  }
}
