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
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
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
  lockedUntil: number;
}

const sha256hex = (text: string): string => createHash('sha256').update(text).digest('hex');

export class AdminAuth {
  private readonly tokens = new Map<string, Principal & { expiresAt: number }>();
  private readonly failures = new Map<string, Failures>();

  constructor(private readonly o: AdminAuthOptions) {}

  /** Checks the password and gives a token; AUTH_INVALID_CREDENTIAL or AUTH_LOCKED_OUT otherwise. */
  async login(user: string, password: string): Promise<{ token: string; expiresAt: number; role: Principal['role'] }> {
    const now = this.o.clock.now();
    const f = this.failures.get(user);
    if (f && f.lockedUntil > now) {
      const retryAfterSeconds = Math.ceil((f.lockedUntil - now) / 1000);
      throw new CohortError('AUTH_LOCKED_OUT', `user ${user} is locked out after ${this.o.maxFailures} wrong passwords; retry in ${retryAfterSeconds} s`, { retryAfterSeconds });
    }
    const stored = await this.o.repository.getAdminUser(user);
    // An unknown user costs the same scrypt work as a known one: timing does not tell which.
    const ok = await verifyPassword(password, stored?.passwordHash ?? DUMMY_HASH);
    if (!stored || !ok) {
      this.recordFailure(user, now);
      throw new CohortError('AUTH_INVALID_CREDENTIAL', 'wrong user or password');
    }
    this.failures.delete(user);
    this.sweep(now);
    const token = randomToken(32);
    const expiresAt = now + this.o.tokenTtlMs;
    this.tokens.set(sha256hex(token), { user, role: stored.role, expiresAt });
    return { token, expiresAt, role: stored.role };
  }

  /** The principal of a bearer token; AUTH_INVALID_CREDENTIAL when unknown or expired. */
  authenticate(token: string): Principal {
    const entry = this.tokens.get(sha256hex(token));
    if (!entry || entry.expiresAt <= this.o.clock.now()) throw new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid or expired token; log in again');
    return { user: entry.user, role: entry.role };
  }

  /**
   * Creates the first admin user when the repository has none: `password` when given, else a
   * generated one written to DATA_DIR/admin-password (0600). Returns the file's path when it
   * wrote one.
   */
  async ensureFirstUser(name: string, dataDir: string, node: string, log: Logger): Promise<string | undefined> {
    if ((await this.o.repository.listAdminUsers()).length > 0) return undefined;
    const password = randomToken(18);
    const created = await this.o.repository.createAdminUser(
      { name, passwordHash: await hashPassword(password), role: 'admin', createdAt: this.o.clock.now() },
      'first-start',
      node,
    );
    if (!created) return undefined; // another console of the same repository was first
    const path = join(dataDir, ADMIN_PASSWORD_FILE);
    const fd = openSync(path, 'w', 0o600);
    writeFileSync(fd, `${password}\n`);
    closeSync(fd);
    log.warn({ user: name, passwordFile: path }, `created admin user ${name}; its generated password is in ${path} (readable by this user only)`);
    return path;
  }

  private recordFailure(user: string, now: number): void {
    const f = this.failures.get(user) ?? { count: 0, lockedUntil: 0 };
    f.count++;
    if (f.count >= this.o.maxFailures) {
      f.count = 0;
      f.lockedUntil = now + this.o.lockoutMs;
    }
    if (this.failures.size > 100_000) this.failures.clear(); // bounded memory under a flood of names
    this.failures.set(user, f);
  }

  private sweep(now: number): void {
    for (const [k, v] of this.tokens) if (v.expiresAt <= now) this.tokens.delete(k);
  }
}

/** A valid hash of a random password nobody knows, checked against when the user does not exist. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
