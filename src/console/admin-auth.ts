/**
 * Who may use the admin API: users with scrypt-hashed passwords in the repository, roles
 * `admin` (everything) and `auditor` (reads only), bearer tokens with an expiry.
 *
 * - Sign-in goes through the LoginGuard (login-guard.ts): budgets of password checks per
 *   source address and for the whole console, and lock-outs keyed by (user, source) and by
 *   user, so a flood of guesses neither starves real users nor locks a named user out for ever.
 * - Every failure is logged (source, user name, reason; never the password) and counted in the
 *   audit trail as `auth.login-failed` records, one per (user, source) per minute at most, and
 *   one per source for made-up names and refusals before a check (FailureTrail below), so a
 *   flood cannot grow the trail without bound nor crowd real users' failures out of it.
 * - Tokens are random 256-bit strings; the repository keeps only their SHA-256 (table
 *   admin_tokens), so a token survives a console restart, reaches the replica with the users
 *   (`config.tokens`) and still works after a promotion; `logout` revokes one. Lookups are
 *   cached for TOKEN_CACHE_MS, so a revocation made on another node (the console, while this
 *   is its replica) takes effect here within a pull plus that time; one made here, at once.
 * - First start: with no user in the repository, the console creates user `admin_user` with
 *   `[console] admin_password`, or with a generated password that it writes to
 *   DATA_DIR/admin-password (0600), logging where.
 */
import { sha256 } from '../http/bearer-auth.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError, isCohortError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';
import { randomToken } from '../core/ids.js';
import { isoTime } from '../core/time-text.js';
import type { Logger } from '../core/logger.js';
import type { AdminUser, AuditInput, Repository } from '../repository/repository.js';
import { WarningLimiter } from '../core/warning-limiter.js';
import type { Secret } from '../config/secret.js';
import { LoginGuard, type LoginGuardOptions } from './login-guard.js';
import { hashPassword, verifyPassword } from './passwords.js';

export const ADMIN_PASSWORD_FILE = 'admin-password';

/** How long a token lookup is trusted without asking the repository again. */
export const TOKEN_CACHE_MS = 5000;
/** How often failed sign-ins are written to the audit trail (aggregated per user and source). */
export const FAILURE_AUDIT_INTERVAL_MS = 60_000;
/** Most (user, source) pairs, and most sources, audited one by one per interval; the rest go into one summary record. */
export const MAX_AUDITED_PAIRS = 1000;

export interface Principal {
  user: string;
  role: AdminUser['role'];
}

export interface AdminAuthOptions extends Omit<LoginGuardOptions, 'clock'> {
  repository: Repository;
  clock: Clock;
  tokenTtlMs: number;
  log: Logger;
  /** This node's id, for the audit records of failed sign-ins. */
  nodeId: string;
  /**
   * Whether this node writes the audit trail (the active console). A replica's trail is a copy
   * of its console's, so it only logs its failed sign-ins.
   */
  auditsFailures(): boolean;
}

export type LoginFailureReason = 'wrong-password' | 'unknown-user' | 'locked-out' | 'throttled';

const sha256hex = (text: string): string => sha256(text).toString('hex');

export class AdminAuth {
  private readonly cache = new Map<string, Principal & { expiresAt: number; checkedAt: number }>();
  private readonly guard: LoginGuard;
  private readonly trail: FailureTrail;
  /** Refusals by budget or lock-out are logged at a bounded rate per source and reason. */
  private readonly refusalWarnings = new WarningLimiter();

  constructor(private readonly o: AdminAuthOptions) {
    this.guard = new LoginGuard({ ...o, clock: o.clock });
    this.trail = new FailureTrail(o);
  }

  /** Starts writing failed sign-ins to the audit trail every minute. */
  start(): void {
    this.trail.start();
  }

  /** Writes what is pending to the audit trail and stops. */
  async stop(): Promise<void> {
    await this.trail.stop();
  }

  /**
   * Checks the password of `user` signing in from `source` (the socket's address) and gives a
   * token; AUTH_INVALID_CREDENTIAL, AUTH_LOCKED_OUT or AUTH_LOGIN_THROTTLED otherwise.
   */
  async login(user: string, password: string, source: string): Promise<{ token: string; expiresAt: number; role: Principal['role'] }> {
    let ticket;
    try {
      ticket = this.guard.admit(user, source);
    } catch (err) {
      if (isCohortError(err, 'AUTH_LOCKED_OUT') || isCohortError(err, 'AUTH_LOGIN_THROTTLED')) {
        this.failed(user, source, err.code === 'AUTH_LOCKED_OUT' ? 'locked-out' : 'throttled');
      }
      throw err;
    }
    let stored: AdminUser | undefined;
    let ok = false;
    try {
      stored = await this.o.repository.getAdminUser(user);
      // An unknown user costs the same scrypt work as a known one: timing does not tell which.
      ok = await verifyPassword(password, stored?.passwordHash ?? DUMMY_HASH);
    } finally {
      if (stored && ok) ticket.succeeded();
      else ticket.failed();
    }
    if (!stored || !ok) {
      this.failed(user, source, stored ? 'wrong-password' : 'unknown-user');
      throw new CohortError('AUTH_INVALID_CREDENTIAL', 'wrong user or password');
    }
    const now = this.o.clock.now();
    const token = randomToken(32);
    const expiresAt = now + this.o.tokenTtlMs;
    await this.o.repository.saveAdminToken({ hash: sha256hex(token), user, role: stored.role, createdAt: now, expiresAt, revokedAt: null });
    void this.o.repository.deleteExpiredAdminTokens(now).catch((err: unknown) => this.o.log.debug({ err }, 'could not drop expired admin tokens'));
    return { token, expiresAt, role: stored.role };
  }

  /** The principal of a bearer token; AUTH_INVALID_CREDENTIAL when unknown, expired or signed out. */
  async authenticate(token: string): Promise<Principal> {
    const { user, role } = await this.session(token);
    return { user, role };
  }

  /** The principal of a bearer token with its expiry (ms); AUTH_INVALID_CREDENTIAL when unknown, expired or signed out. */
  async session(token: string): Promise<Principal & { expiresAt: number }> {
    const now = this.o.clock.now();
    const hash = sha256hex(token);
    let entry = this.cache.get(hash);
    if (!entry || now - entry.checkedAt >= TOKEN_CACHE_MS) {
      this.cache.delete(hash);
      const stored = await this.o.repository.getAdminToken(hash);
      entry = undefined;
      if (stored && stored.revokedAt === null && stored.expiresAt > now) {
        entry = { user: stored.user, role: stored.role, expiresAt: stored.expiresAt, checkedAt: now };
        if (this.cache.size >= 10_000) this.cache.clear();
        this.cache.set(hash, entry);
      }
    }
    if (!entry || entry.expiresAt <= now) throw new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid, expired or signed-out token; log in again');
    return { user: entry.user, role: entry.role, expiresAt: entry.expiresAt };
  }

  /** Signing out (the same as `logout`). */
  revoke(token: string): Promise<void> {
    return this.logout(token);
  }

  /** Signs a token out: it is refused from now on, here and (after its next pull) on the replica. */
  async logout(token: string): Promise<void> {
    const hash = sha256hex(token);
    this.cache.delete(hash);
    await this.o.repository.revokeAdminToken(hash, this.o.clock.now());
  }

  private failed(user: string, source: string, reason: LoginFailureReason): void {
    this.trail.add(user, source, reason);
    if (reason === 'wrong-password' || reason === 'unknown-user') {
      this.o.log.warn({ source, user, reason }, 'admin sign-in failed');
      return;
    }
    const verdict = this.refusalWarnings.check(`${source}\0${reason}`, this.o.clock.now());
    if (verdict.log) this.o.log.warn({ source, user, reason }, 'admin sign-in refused (further refusals from this address are counted, not logged, for a minute)');
    else if (verdict.summary) this.o.log.warn({ suppressed: verdict.summary.suppressed }, 'admin sign-ins refused by budget or lock-out and not logged one by one');
  }

  /**
   * Creates the first admin user when the repository has none: with `password` when given
   * (`[console] admin_password`), else with a generated one written to DATA_DIR/admin-password
   * (0600). Returns the file's path when it wrote one. With users already there a given
   * password changes nothing; one that does not open `name` any more (the secret it came from
   * was changed after the first start) is worth a warning, since an operator who changed it
   * may expect the stored password to follow.
   */
  async ensureFirstUser(name: string, dataDir: string, node: string, log: Logger, password?: Secret): Promise<string | undefined> {
    if ((await this.o.repository.listAdminUsers()).length > 0) {
      if (password) await this.warnIfPasswordDiffers(name, password, log);
      return undefined;
    }
    if (password) {
      const created = await this.o.repository.createAdminUser(
        { name, passwordHash: await hashPassword(password.reveal()), role: 'admin', createdAt: this.o.clock.now() },
        'first-start',
        node,
      );
      if (created) log.info({ user: name }, `created admin user ${name} with the password of [console] admin_password`);
      return undefined;
    }
    const generated = randomToken(18);
    // The file first: a user whose password was never written anywhere could not be used.
    const path = join(dataDir, ADMIN_PASSWORD_FILE);
    writeFileAtomic(path, `${generated}\n`);
    const created = await this.o.repository.createAdminUser(
      { name, passwordHash: await hashPassword(generated), role: 'admin', createdAt: this.o.clock.now() },
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

  private async warnIfPasswordDiffers(name: string, password: Secret, log: Logger): Promise<void> {
    const user = await this.o.repository.getAdminUser(name);
    if (user && (await verifyPassword(password.reveal(), user.passwordHash))) return;
    log.warn(
      { user: name },
      user
        ? `[console] admin_password does not match the stored password of ${name}: it is used only when the first admin user is created, so the stored password stays in force`
        : `[console] admin_password is set, but the repository has admin users and none named ${name}: it is used only when the first admin user is created`,
    );
  }
}

/** A valid hash of a random password nobody knows, checked against when the user does not exist. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

interface TrailEntry {
  /** The user name, or `-` for failures counted per source. */
  user: string;
  source: string;
  reasons: Map<LoginFailureReason, number>;
}

/**
 * Failed sign-ins counted per (user, source) and written to the audit trail once per
 * interval, one record per pair (at most MAX_AUDITED_PAIRS, the rest summed in one record).
 */
class FailureTrail {
  private pending = new Map<string, TrailEntry>();
  private bySource = new Map<string, TrailEntry>();
  private overflow = 0;
  private since: number;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly o: AdminAuthOptions) {
    this.since = o.clock.now();
  }

  start(): void {
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.clock.clearTimeout(this.timer);
    await this.flush();
  }

  /**
   * Counts one failure. Names that exist (a wrong password, a lock-out) are counted per (user,
   * source); made-up names and refusals before any check are counted per source only, so a
   * flood of invented names cannot crowd the failures of real users out of the trail.
   */
  add(user: string, source: string, reason: LoginFailureReason): void {
    const perSource = reason === 'unknown-user' || reason === 'throttled';
    const table = perSource ? this.bySource : this.pending;
    const key = perSource ? source : `${user}\0${source}`;
    let entry = table.get(key);
    if (!entry) {
      if (table.size >= MAX_AUDITED_PAIRS) {
        this.overflow++;
        return;
      }
      table.set(key, (entry = { user: perSource ? '-' : user, source, reasons: new Map() }));
    }
    entry.reasons.set(reason, (entry.reasons.get(reason) ?? 0) + 1);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => {
      void this.flush().finally(() => this.schedule());
    }, FAILURE_AUDIT_INTERVAL_MS);
  }

  /** Writes the records of the interval that ended; kept for later when the repository fails. */
  async flush(): Promise<void> {
    const since = this.since;
    const entries = [...this.pending.values(), ...this.bySource.values()];
    const overflow = this.overflow;
    this.pending = new Map();
    this.bySource = new Map();
    this.overflow = 0;
    this.since = this.o.clock.now();
    if (!this.o.auditsFailures() || (entries.length === 0 && overflow === 0)) return;
    const window = `between ${isoTime(since)} and ${isoTime(this.since)}`;
    const records: AuditInput[] = entries.map((e) => {
      const count = [...e.reasons.values()].reduce((a, b) => a + b, 0);
      const reasons = [...e.reasons].map(([r, n]) => `${r} ${n}`).join(', ');
      const whose = e.user === '-' ? 'with unknown user names or refused before a password check' : `of user ${e.user}`;
      return { user: e.user, node: this.o.nodeId, action: 'auth.login-failed', summary: `${count} failed sign-in(s) ${whose} from ${e.source} ${window} (${reasons})` };
    });
    if (overflow > 0) {
      records.push({ user: '-', node: this.o.nodeId, action: 'auth.login-failed', summary: `${overflow} more failed sign-in(s) ${window}, from (user, address) pairs beyond the ${MAX_AUDITED_PAIRS} audited one by one` });
    }
    try {
      for (const rec of records) await this.o.repository.appendAudit(rec);
    } catch (err) {
      this.o.log.error({ err, records: records.length }, 'could not write failed sign-ins to the audit trail');
    }
  }
}
