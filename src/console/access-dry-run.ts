/**
 * The console's dry run of an access decision (`POST /admin/v1/apis/test`): the decision a
 * request would get on the current `apis` document, or on a proposed one, computed by the
 * engines' own decision function and touching no state.
 *
 * The console holds no runtime state, so every step that would read or write it is answered
 * by a stand-in that records what it skipped: a session id is taken as a live session (subject
 * unknown), nothing is revoked, locked, replayed or rate-limited, and no lock-out failure, rate
 * limit token or replay entry is recorded. What is checked for real: matching, methods, the deny
 * lists, public paths, which credential the request carries, client API keys, JWT signatures and
 * claims (a remote key set is fetched as an engine would), monitor mode and identity headers.
 */
import { systemClock } from '../core/clock.js';
import { decide, type AccessRequest } from '../engine/access/decide.js';
import { runtimeSettings } from '../engine/runtime-settings.js';
import type { Session, StateProvider } from '../state/services.js';
import { validateSection } from './config-sections.js';

export interface DryRunAnswer {
  decision: 'allow' | 'deny';
  status: number;
  reason: string;
  wouldDeny?: string;
  api?: string;
  subject?: string;
  sessionId?: string;
  apiKeyId?: string;
  retryAfterSeconds?: number;
  upstreamHeaders: Record<string, string>;
  /** Which `apis` document was used: `current` or `proposed`. */
  document: 'current' | 'proposed';
  /** The state checks the decision would make on an engine, not made here. */
  skipped: string[];
  /** Why API definitions could not be compiled (each such API denies what it matches). */
  definitionErrors: string[];
  detail?: string;
}

/** A state provider that answers without state and notes each question it was asked. */
function dryProvider(skipped: Set<string>): StateProvider {
  const refused = (what: string) => async (): Promise<never> => {
    throw new Error(`${what} is not part of a dry run`);
  };
  const free = { locked: false, failures: 0, retryAfterMs: 0 };
  return {
    name: 'grid',
    sessions: {
      create: refused('creating a session'),
      get: async (id: string) => {
        skipped.add('session lookup (the session id is taken as a live session; its subject is unknown)');
        return { id } as Session;
      },
      listBySubject: refused('listing sessions'),
      pageBySubject: refused('listing sessions'),
      delete: refused('deleting a session'),
    },
    revocations: {
      revoke: refused('revoking'),
      revokeFor: refused('revoking'),
      isRevoked: async () => {
        skipped.add('revocation check');
        return false;
      },
    },
    lockout: {
      recordFailure: async () => {
        skipped.add('lock-out failure count (not recorded)');
        return free;
      },
      status: async () => {
        skipped.add('lock-out status');
        return free;
      },
      reset: refused('resetting a lock-out'),
    },
    replay: {
      checkAndInsert: async () => {
        skipped.add('replay prevention (single-use token)');
        return true;
      },
    },
    artifacts: { put: refused('artifacts'), resolve: refused('artifacts') },
    requestState: { put: refused('request state'), get: refused('request state'), delete: refused('request state') },
    tokens: { put: refused('tokens'), get: refused('tokens'), delete: refused('tokens') },
    rateLimits: {
      take: async (_policy: string, _key: string, limits) => {
        skipped.add('rate limit (no token taken)');
        return { allowed: true, remaining: limits.capacity };
      },
    },
    close: async () => {},
  } as StateProvider;
}

/**
 * The decision `request` would get. `sections` are the console's current `runtime`,
 * `api-keys` and `apis` contents; `proposedApis`, when given, replaces `apis` after it passes
 * the section's schema (CONSOLE_DOCUMENT_INVALID otherwise).
 */
export async function dryRunDecision(request: AccessRequest, sections: { runtime: unknown; 'api-keys': unknown; apis: unknown }, proposedApis?: unknown): Promise<DryRunAnswer> {
  if (proposedApis !== undefined) validateSection('apis', proposedApis);
  const settings = runtimeSettings({ runtime: sections.runtime, 'api-keys': sections['api-keys'], apis: proposedApis ?? sections.apis });
  const skipped = new Set<string>();
  const d = await decide(request, settings.access, { provider: dryProvider(skipped), lockoutPolicy: settings.lockoutPolicy, rateLimit: settings.rateLimit }, systemClock);
  const answer: DryRunAnswer = {
    decision: d.allow ? 'allow' : 'deny',
    status: d.status,
    reason: d.reason,
    upstreamHeaders: d.upstreamHeaders,
    document: proposedApis === undefined ? 'current' : 'proposed',
    skipped: [...skipped],
    definitionErrors: settings.accessErrors,
  };
  if (d.wouldDeny) answer.wouldDeny = d.wouldDeny;
  if (d.api !== undefined) answer.api = d.api;
  if (d.identity?.subject !== undefined) answer.subject = d.identity.subject;
  if (d.identity?.sessionId !== undefined) answer.sessionId = d.identity.sessionId;
  if (d.identity?.apiKeyId !== undefined) answer.apiKeyId = d.identity.apiKeyId;
  if (d.retryAfterSeconds !== undefined) answer.retryAfterSeconds = d.retryAfterSeconds;
  if (d.detail !== undefined) answer.detail = d.detail;
  return answer;
}
