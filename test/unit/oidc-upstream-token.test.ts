/**
 * Token mediation: one fetch per key while the token lives, shared by concurrent requests on
 * one engine (single flight) and by several engines over one state provider (the lease), one
 * more once it is about to expire; the exchange sends the session's access token.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../src/core/clock.js';
import { compileApi, type CompiledApi, type UpstreamTokenDefinition } from '../../src/engine/access/definitions.js';
import { providerTokensKey } from '../../src/engine/oidc/sign-in.js';
import { refreshAt, UpstreamTokens, type TokenFetcher } from '../../src/engine/oidc/upstream-token.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';

function counting(expiresIn: number): { fetcher: TokenFetcher; bodies: URLSearchParams[]; auth: string[] } {
  const bodies: URLSearchParams[] = [];
  const auth: string[] = [];
  const fetcher: TokenFetcher = async (_url, init) => {
    bodies.push(new URLSearchParams(init.body));
    auth.push(init.headers.authorization!);
    // A slow token endpoint, so concurrent requests really overlap.
    await new Promise((r) => setTimeout(r, 50));
    return { status: 200, json: async () => ({ access_token: `t${bodies.length}`, token_type: 'Bearer', expires_in: expiresIn }) };
  };
  return { fetcher, bodies, auth };
}

const api = (upstreamToken: UpstreamTokenDefinition): CompiledApi & { upstreamToken: UpstreamTokenDefinition } =>
  compileApi({ id: 'app', pathPrefix: '/app', upstream: 'http://127.0.0.1:1', upstreamToken, login: { issuer: 'http://127.0.0.1:2', clientId: 'c', clientSecret: 's' } }) as CompiledApi & { upstreamToken: UpstreamTokenDefinition };

/** The system clock's timers are unref'd (a server's sockets keep it running): this test keeps the loop alive itself. */
function awake(t: { after(fn: () => void): void }): void {
  const timer = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(timer));
}

describe('token mediation', () => {
  it('stops using a token 10% of its life before it expires, at most 30 s early', () => {
    assert.equal(refreshAt(1000, 10_000), 10_000);
    assert.equal(refreshAt(0, 3_600_000), 3_570_000);
  });

  it('three engines, 300 concurrent requests: one call to the token endpoint; one more after expiry', async (t) => {
    const { provider } = localGrid(systemClock);
    t.after(() => provider.close());
    awake(t);
    const { fetcher, bodies, auth } = counting(2);
    const engines = [0, 1, 2].map(() => new UpstreamTokens(provider, systemClock, fetcher));
    const a = api({ tokenEndpoint: 'http://127.0.0.1:3/token', clientId: 'gw client', clientSecret: 's:cret', grant: 'client-credentials', audience: 'orders' });
    const identity = { kind: 'session' as const, subject: 'alice', sessionId: 's1' };
    const first = await Promise.all(Array.from({ length: 300 }, (_, i) => engines[i % 3]!.tokenFor(a, identity)));
    console.log(`token endpoint calls for 300 requests on 3 engines: ${bodies.length}`);
    assert.equal(bodies.length, 1);
    assert.ok(first.every((tk) => tk === 't1'));
    assert.equal(bodies[0]!.get('grant_type'), 'client_credentials');
    assert.equal(bodies[0]!.get('audience'), 'orders');
    assert.equal(auth[0], `Basic ${Buffer.from('gw%20client:s%3Acret').toString('base64')}`);

    await new Promise((r) => setTimeout(r, 2000));
    const second = await Promise.all(Array.from({ length: 30 }, (_, i) => engines[i % 3]!.tokenFor(a, identity)));
    console.log(`token endpoint calls after the token expired: ${bodies.length}`);
    assert.equal(bodies.length, 2);
    assert.ok(second.every((tk) => tk === 't2'));
  });

  it('token exchange: per subject, with the session\'s access token as the subject token', async (t) => {
    const { provider } = localGrid(systemClock);
    t.after(() => provider.close());
    awake(t);
    const { fetcher, bodies } = counting(60);
    const engine = new UpstreamTokens(provider, systemClock, fetcher);
    const a = api({ tokenEndpoint: 'http://127.0.0.1:3/token', clientId: 'c', clientSecret: 's', grant: 'token-exchange', audience: 'orders' });
    await provider.tokens.put(providerTokensKey('s1'), { accessToken: 'user-at-1' }, 60_000);
    await provider.tokens.put(providerTokensKey('s2'), { accessToken: 'user-at-2' }, 60_000);
    await Promise.all([1, 2, 3].map(() => engine.tokenFor(a, { kind: 'session', subject: 'alice', sessionId: 's1' })));
    await engine.tokenFor(a, { kind: 'session', subject: 'bob', sessionId: 's2' });
    assert.equal(bodies.length, 2);
    assert.equal(bodies[0]!.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange');
    assert.equal(bodies[0]!.get('subject_token'), 'user-at-1');
    assert.equal(bodies[0]!.get('subject_token_type'), 'urn:ietf:params:oauth:token-type:access_token');
    assert.equal(bodies[1]!.get('subject_token'), 'user-at-2');
    await assert.rejects(engine.tokenFor(a, { kind: 'session', subject: 'carol', sessionId: 'gone' }), { code: 'UPSTREAM_TOKEN_FAILED' });
    await assert.rejects(engine.tokenFor(a, { kind: 'apiKey', subject: 'apiKey:k', apiKeyId: 'k' }), { code: 'UPSTREAM_TOKEN_FAILED' });
  });

  it('a refusing or unreachable token endpoint is UPSTREAM_TOKEN_FAILED, and nothing is cached', async (t) => {
    const { provider } = localGrid(systemClock);
    t.after(() => provider.close());
    awake(t);
    let calls = 0;
    const engine = new UpstreamTokens(provider, systemClock, async () => {
      calls += 1;
      if (calls === 1) throw new TypeError('fetch failed');
      return { status: 401, json: async () => ({ error: 'invalid_client' }) };
    });
    const a = api({ tokenEndpoint: 'http://127.0.0.1:3/token', clientId: 'c', clientSecret: 's', grant: 'client-credentials' });
    await assert.rejects(engine.tokenFor(a, undefined), { code: 'UPSTREAM_TOKEN_FAILED' });
    await assert.rejects(engine.tokenFor(a, undefined), { code: 'UPSTREAM_TOKEN_FAILED', message: /401 \(invalid_client\)/ });
  });
});
