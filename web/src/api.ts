/**
 * The admin API as the page uses it: same origin, the HttpOnly session cookie (sent by the
 * browser; scripts never see the token) and the CSRF header on every change.
 *
 * A 401 from any call means the session is over (signed out elsewhere, or expired):
 * `onSessionEnded` sends the page back to sign-in.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Every problem of a refused document ("<JSON path>: <message>"), when the API lists them. */
    readonly errors: string[] = [],
  ) {
    super(message);
  }
}

export interface Session {
  user: string;
  role: 'admin' | 'auditor';
  expiresAt: string;
  csrfToken: string;
}

let csrfToken: string | undefined;
let onSessionEnded: (() => void) | undefined;

export function setSessionHandlers(csrf: string | undefined, ended: () => void): void {
  csrfToken = csrf;
  onSessionEnded = ended;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-cohort-csrf'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the console does not answer (stopped or restarting?)');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = (parsed as { error?: { code?: string; message?: string; errors?: string[] } } | undefined)?.error;
    const err = new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `${method} ${path} answered ${res.status}`, e?.errors ?? []);
    if (res.status === 401 && path !== '/admin/v1/login') onSessionEnded?.();
    throw err;
  }
  return parsed as T;
}

export function signIn(user: string, password: string): Promise<Session> {
  return api<Session>('POST', '/admin/v1/login', { user, password, cookie: true });
}

/** The current session, or undefined when there is none (no cookie, or it is no longer valid). */
export async function currentSession(): Promise<Session | undefined> {
  const res = await fetch('/admin/v1/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' });
  if (res.status === 401) return undefined;
  if (!res.ok) throw new ApiError(res.status, `HTTP_${res.status}`, `the console answered ${res.status}`);
  return (await res.json()) as Session;
}

/** A message for an error, whatever it is. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return `${err.message}${err.code && err.status !== 0 ? ` [${err.code}]` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

export interface ClusterNode {
  id: string;
  address: string;
  role: string;
  version: string;
  state: string;
  group: string | null;
  scheduler: string | null;
  health: 'green' | 'yellow' | 'red' | null;
  lastUpdated: string | null;
  configVersion: number | null;
  configAppliedAt: string | null;
  replication: 'in-sync' | 'out-of-date' | 'failed' | null;
}

export interface ClusterView {
  clusterId: string;
  role: 'console' | 'replica' | 'demoted';
  epoch: number;
  configVersion: number;
  mixedVersions: boolean;
  versions: string[];
  nodes: ClusterNode[];
  notes: string[];
}
