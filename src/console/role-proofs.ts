/**
 * Proofs of role between the console and its replicas (policy/console-authority.ts holds the
 * key and the signing):
 *
 * - A replica's requests for what only a replica may have (`config.export`, `config.users`,
 *   `config.tokens`, `config.history`, `config.discarded`) carry a proof: a signature by the
 *   authority key over the method, who asks whom, a time and a nonce. The console checks it with
 *   its own key (a replica it admitted holds the same), refuses it when older than
 *   PROOF_WINDOW_MS or seen before, and answers nothing to a node that cannot sign: a node
 *   holding only the cluster secret gets no audit record, user, token or document.
 * - The console's answers to those pulls (each page of `config.history` included) are signed
 *   over the request's nonce and their whole content, so a replica takes nothing from, and
 *   drops nothing because of, a node that only claims to be the console.
 * - The key of the secrets at rest (core/sealed-secrets.ts) travels to the replica with the
 *   documents it opens, in the signed `config.export` answer, itself sealed (AES-256-GCM) under
 *   a key both derive from the authority's private key and the request's nonce: a node that
 *   can read the cluster channel but holds no authority learns nothing of it.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import { signStatement, verifyStatement, type AuthorityProof, type ConsoleAuthority } from '../policy/console-authority.js';

/** How old a replica's proof may be (clocks are checked to agree within 1 s). */
export const PROOF_WINDOW_MS = 60_000;
/** Most nonces remembered to refuse a replayed proof (each is kept for PROOF_WINDOW_MS). */
const MAX_NONCES = 100_000;

/** What a replica adds to the body of a request only a replica may make. */
export interface ReplicaProof extends AuthorityProof {
  at: number;
  nonce: string;
}

export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

/** The proof a replica (`from`) attaches to a `method` request to the console `to`. */
export function replicaProof(authority: ConsoleAuthority, method: string, from: string, to: string, now: number): ReplicaProof {
  const nonce = newNonce();
  return { at: now, nonce, ...signStatement(authority, 'replica-request', { method, from, to, at: now, nonce }, null) };
}

export class ReplicaProofChecker {
  /** Nonce → when it was seen; insertion order is time order. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly authority: () => ConsoleAuthority | undefined,
    private readonly nodeId: string,
    private readonly clock: Clock,
  ) {}

  /** Throws CONSOLE_ROLE_UNPROVEN unless `proof` is a fresh, unused signature of `from` asking this node for `method`. */
  check(method: string, proof: unknown, from: string): void {
    const authority = this.authority();
    const refuse = (why: string): CohortError => new CohortError('CONSOLE_ROLE_UNPROVEN', `${from} asked for ${method} without the console's proof (${why}): only a replica the console admitted gets it`);
    if (!authority) throw refuse('this node holds no console authority key');
    const p = proof as Partial<ReplicaProof> | undefined;
    if (typeof p !== 'object' || p === null || typeof p.at !== 'number' || typeof p.nonce !== 'string' || p.nonce.length > 64) throw refuse('no proof');
    const now = this.clock.now();
    if (Math.abs(now - p.at) > PROOF_WINDOW_MS) throw refuse('the proof is too old, or the clocks disagree');
    if (!verifyStatement(authority.publicKey, p, 'replica-request', { method, from, to: this.nodeId, at: p.at, nonce: p.nonce }, null)) throw refuse('the signature does not match');
    this.forget(now);
    if (this.seen.has(p.nonce)) throw refuse('the proof was used before');
    if (this.seen.size >= MAX_NONCES) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(p.nonce, now);
  }

  private forget(now: number): void {
    for (const [nonce, at] of this.seen) {
      if (now - at <= 2 * PROOF_WINDOW_MS) break;
      this.seen.delete(nonce);
    }
  }
}

/** The console's signature of an answer to a replica's `method` request with `nonce`. */
export function signAnswer(authority: ConsoleAuthority, method: string, nonce: string, content: unknown): AuthorityProof {
  return signStatement(authority, 'console-answer', { method, nonce }, content);
}

/** Throws CONSOLE_ROLE_UNPROVEN unless `proof` is the authority's signature of `content` answering `method` with `nonce`. */
export function checkAnswer(authority: ConsoleAuthority, method: string, nonce: string, content: unknown, proof: unknown, console: string): void {
  if (!verifyStatement(authority.publicKey, proof, 'console-answer', { method, nonce }, content)) {
    throw new CohortError('CONSOLE_ROLE_UNPROVEN', `${console} answered ${method} without the console's proof: nothing taken from it`);
  }
}

const TRANSFER_LABEL = 'cohort/v1/secrets-key-transfer';

/** The key that seals the secrets key for one answer: only holders of the authority derive it. */
function transferKey(authority: ConsoleAuthority, nonce: string): Buffer {
  const ikm = authority.privateKey.export({ type: 'pkcs8', format: 'der' });
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.from(nonce, 'utf8'), TRANSFER_LABEL, 32));
}

/** `key` (the secrets key) sealed for the replica whose request carried `nonce`: base64url of iv | ciphertext | tag. */
export function sealKeyForReplica(authority: ConsoleAuthority, nonce: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', transferKey(authority, nonce), iv);
  cipher.setAAD(Buffer.from(TRANSFER_LABEL));
  return Buffer.concat([iv, cipher.update(key), cipher.final(), cipher.getAuthTag()]).toString('base64url');
}

/** The secrets key of an answer to the request with `nonce`; CONSOLE_ROLE_UNPROVEN when it does not open. */
export function openKeyFromConsole(authority: ConsoleAuthority, nonce: string, sealed: unknown, console: string): Buffer {
  const raw = typeof sealed === 'string' ? Buffer.from(sealed, 'base64url') : Buffer.alloc(0);
  try {
    const decipher = createDecipheriv('aes-256-gcm', transferKey(authority, nonce), raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(TRANSFER_LABEL));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
  } catch {
    throw new CohortError('CONSOLE_ROLE_UNPROVEN', `${console} sent a secrets key this node cannot open with the console authority: nothing taken from it`);
  }
}
