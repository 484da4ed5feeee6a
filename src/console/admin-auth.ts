/**
 * Who may use the admin API: users with scrypt-hashed passwords in the repository, roles
 * `admin` (everything) and `auditor` (reads only), bearer tokens with an expiry.
 *
 * - Tokens are random 256-bit strings; the console keeps only their SHA-256 (in memory: a
 *   console restart asks everyone to log in again).
 * - After `maxFailures` wrong passwords in a row a user is locked out for `lockoutMs`: logins
 *   are refused without looking at the password, so guessing gains nothing. Lock-out counts
 *   live in memory, so a refused login changes no stored data.
 * - First start: with no user in the repository, the console creates user `admin_user` with
 *   a generated password, writes it to DATA_DIR/admin-password (0600) and logs where.
 */
import { sha256 } from '../http/bearer-auth.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';
import { randomToken } from '../core/ids.js';
import type { Logger } from '../core/logger.js';
import type { AdminUser, Repository } from '../repository/repository.js';
import { hashPassword, verifyPassword } from './passwords.js';

export const ADMIN_PASSWORD_FILE = 'admin-password';

export interface Principal {
  user: string;
  role: AdminUser['role'];
}

export interface AdminAuthOptions {
  repository: Repository;
  clock: Clock;
  tokenTtlMs: number;
  maxFailures: number;
  lockoutMs: number;
}

interface Failures {
  count: number;
  /** Logins of this user being checked right now: they count against the limit too. */
  pending: number;
  lockedUntil: number;
}

/** Users whose failed logins are remembered at once, at most (names need not exist). */
const MAX_TRACKED_USERS = 100_000;

const sha256hex = (text: string): string => sha256(text).toString('hex');

export class AdminAuth {
  private readonly tokens = new Map<string, Principal & { expiresAt: number }>();
  private readonly failures = new Map<string, Failures>();

  constructor(private readonly o: AdminAuthOptions) {}

  /** Checks the password and gives a token; AUTH_INVALID_CREDENTIAL or AUTH_LOCKED_OUT otherwise. */
  async login(user: string, password: string): Promise<{ token: string; expiresAt: number; role: Principal['role'] }> {
    const now = this.o.clock.now();
    const f = this.entry(user);
    if (f.lockedUntil > now) {
      const retryAfterSeconds = Math.ceil((f.lockedUntil - now) / 1000);
      throw new CohortError('AUTH_LOCKED_OUT', `user ${user} is locked out after ${this.o.maxFailures} wrong passwords; retry in ${retryAfterSeconds} s`, { retryAfterSeconds });
    }
    // Logins in flight count as failures until they succeed, so parallel guesses cannot
    // outnumber the limit while the hashes are being checked.
    if (f.count + f.pending >= this.o.maxFailures) {
      throw new CohortError('AUTH_LOCKED_OUT', `too many logins of user ${user} at once; retry in a second`, { retryAfterSeconds: 1 });
    }
    f.pending++;
    let ok = false;
    let stored: AdminUser | undefined;
    try {
      stored = await this.o.repository.getAdminUser(user);
      // An unknown user costs the same scrypt work as a known one: timing does not tell which.
      ok = await verifyPassword(password, stored?.passwordHash ?? DUMMY_HASH);
    } finally {
      f.pending--;
    }
    if (!stored || !ok) {
      this.recordFailure(f, this.o.clock.now());
      throw new CohortError('AUTH_INVALID_CREDENTIAL', 'wrong user or password');
    }
    if (f.pending === 0) this.failures.delete(user);
    else f.count = 0;
    this.sweep(now);
    const token = randomToken(32);
    const expiresAt = now + this.o.tokenTtlMs;
    this.tokens.set(sha256hex(token), { user, role: stored.role, expiresAt });
    return { token, expiresAt, role: stored.role };
  }

  /** The principal of a bearer token; AUTH_INVALID_CREDENTIAL when unknown or expired. */
  authenticate(token: string): Principal {
    const { user, role } = this.session(token);
    return { user, role };
  }

  /** The principal of a bearer token with its expiry (ms); AUTH_INVALID_CREDENTIAL when unknown or expired. */
  session(token: string): Principal & { expiresAt: number } {
    const entry = this.tokens.get(sha256hex(token));
    if (!entry || entry.expiresAt <= this.o.clock.now()) throw new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid or expired token; log in again');
    return { user: entry.user, role: entry.role, expiresAt: entry.expiresAt };
  }

  /** Signing out: the token is forgotten at once, so it opens nothing any more. */
  revoke(token: string): void {
    this.tokens.delete(sha256hex(token));
  }

  /**
   * Creates the first admin user when the repository has none: `password` when given, else a
   * generated one written to DATA_DIR/admin-password (0600). Returns the file's path when it
   * wrote one.
   */
  async ensureFirstUser(name: string, dataDir: string, node: string, log: Logger): Promise<string | undefined> {
    if ((await this.o.repository.listAdminUsers()).length > 0) return undefined;
    const password = randomToken(18);
    // The file first: a user whose password was never written anywhere could not be used.
    const path = join(dataDir, ADMIN_PASSWORD_FILE);
    writeFileAtomic(path, `${password}\n`);
    const created = await this.o.repository.createAdminUser(
      { name, passwordHash: await hashPassword(password), role: 'admin', createdAt: this.o.clock.now() },
      'first-start',
      node,
    );
    if (!created) {
      rmSync(path, { force: true }); // another console of the same repository was first
      return undefined;
    }
    log.warn({ user: name, passwordFile: path }, `created admin user ${name}; its generated password is in ${path} (readable by this user only)`);
    return path;
  }

  private entry(user: string): Failures {
    let f = this.failures.get(user);
    if (!f) {
      if (this.failures.size >= MAX_TRACKED_USERS) this.forgetIdle();
      this.failures.set(user, (f = { count: 0, pending: 0, lockedUntil: 0 }));
    }
    return f;
  }

  private recordFailure(f: Failures, now: number): void {
    f.count++;
    if (f.count >= this.o.maxFailures) {
      f.count = 0;
      f.lockedUntil = now + this.o.lockoutMs;
    }
  }

  /** Bounded memory under a flood of made-up names: forgets counts, never a live lock-out or a login in flight. */
  private forgetIdle(): void {
    const now = this.o.clock.now();
    for (const [name, f] of this.failures) if (f.lockedUntil <= now && f.pending === 0) this.failures.delete(name);
  }

  private sweep(now: number): void {
    for (const [k, v] of this.tokens) if (v.expiresAt <= now) this.tokens.delete(k);
  }
}

/** A valid hash of a random password nobody knows, checked against when the user does not exist. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
