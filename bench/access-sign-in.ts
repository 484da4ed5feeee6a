/**
 * The web sign-in row of `npm run bench:access`: sessions created the way a browser gets one —
 * the forward-auth door with `?redirect=true` sends to an OpenID provider (a small one in this
 * process, test/helpers/oidc-test-issuer.ts, answering only discovery, keys and the token
 * endpoint), the provider's callback comes back through the door, which creates the session
 * and sets its cookie — then driven like the plain session row. Each decision touches the
 * session (its idle time extended), as every session decision does.
 */
import { startTestIssuer, type TestIssuer } from '../test/helpers/oidc-test-issuer.js';

export const SIGN_IN_PREFIX = '/portal';

/** The provider, stopped when the bench process exits. */
export async function startBenchIssuer(): Promise<TestIssuer> {
  const cleanups: Array<() => void | Promise<void>> = [];
  process.once('exit', () => {
    for (const fn of cleanups) void fn();
  });
  return startTestIssuer({ after: (fn) => void (fn && cleanups.push(fn as () => void)) });
}

/** The API whose sessions come from sign-in: the same checks as the plain session API. */
export function signInApi(issuer: TestIssuer, rateLimit: { policy: string; by: string }): Record<string, unknown> {
  return { id: 'portal', pathPrefix: SIGN_IN_PREFIX, credentials: ['session'], checkRevocation: true, rateLimit, login: { issuer: issuer.issuer, clientId: issuer.clientId, clientSecret: issuer.clientSecret } };
}

/**
 * `count` sessions made by signing in through `runtime`'s forward-auth door, for users
 * `signin-0`...; their ids. `forward` gives the door's headers for a URI and a credential.
 */
export async function signInSessions(runtime: string, issuer: TestIssuer, count: number, forward: (uri: string, credential: Record<string, string>) => Record<string, string>): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const start = await fetch(`${runtime}/authz/forward?redirect=true`, { headers: forward(`${SIGN_IN_PREFIX}/${i}`, { Accept: 'text/html' }), redirect: 'manual' });
    await start.arrayBuffer();
    if (start.status !== 302) throw new Error(`sign-in did not start: ${start.status} ${start.headers.get('x-cohort-reason')}`);
    const authorize = new URL(start.headers.get('location')!);
    const state = authorize.searchParams.get('state')!;
    issuer.next = { nonce: authorize.searchParams.get('nonce')!, sub: `signin-${i}` };
    const done = await fetch(`${runtime}/authz/forward?redirect=true`, { headers: forward(`${SIGN_IN_PREFIX}/_cohort/callback?code=bench&state=${state}`, { Accept: 'text/html', Cookie: `cohort_login=${state}` }), redirect: 'manual' });
    await done.arrayBuffer();
    const cookie = done.headers.getSetCookie().find((c) => c.startsWith('cohort_session='));
    if (done.status !== 302 || cookie === undefined) throw new Error(`sign-in callback failed: ${done.status} ${done.headers.get('x-cohort-reason')}`);
    ids.push(cookie.slice('cohort_session='.length, cookie.indexOf(';')));
  }
  return ids;
}
