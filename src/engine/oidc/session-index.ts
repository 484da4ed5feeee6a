/**
 * Which Cohort sessions a provider session (`sid`) signed in, for back-channel logout: kept in
 * inter-request state under a hash of (issuer, sid), as long as the longest of those sessions
 * may live. A logout token may name only the `sid`; the sessions service pages by subject, not
 * by attribute, so this index is what finds them. (When the token also names `sub`, the
 * subject's sessions are searched too, so a sign-in that raced another one on the same index
 * entry is still found.)
 */
import { createHash } from 'node:crypto';
import type { StateProvider } from '../../state/services.js';

/** At most this many sessions are remembered per provider session (one per API and browser tab is typical). */
const MAX_PER_SID = 200;

export function sidKey(issuer: string, sid: string): string {
  return `oidc:sid:${createHash('sha256').update(`${issuer}\n${sid}`).digest('base64url')}`;
}

interface Entry {
  ids: string[];
  until: number;
}

export async function rememberSid(provider: StateProvider, issuer: string, sid: string, sessionId: string, until: number, now: number): Promise<void> {
  const key = sidKey(issuer, sid);
  const entry = (await provider.requestState.get(key)) as Entry | undefined;
  const ids = [...(entry?.ids ?? []).filter((id) => id !== sessionId), sessionId].slice(-MAX_PER_SID);
  const end = Math.max(until, entry?.until ?? 0);
  await provider.requestState.put(key, { ids, until: end } satisfies Entry, Math.max(1000, end - now));
}

export async function sessionsOfSid(provider: StateProvider, issuer: string, sid: string): Promise<string[]> {
  const entry = (await provider.requestState.get(sidKey(issuer, sid))) as Entry | undefined;
  return entry?.ids ?? [];
}
