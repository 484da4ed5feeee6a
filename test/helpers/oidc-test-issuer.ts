/**
 * A small OpenID provider written for tests that need to misbehave on purpose: its token
 * endpoint returns ID tokens with whatever issuer, audience and nonce the test asks for, and
 * it signs logout tokens (or forges them with a key it does not publish). Discovery, keys and
 * the token endpoint are real HTTP on a loopback port, so the engine's relying party talks to
 * it exactly as to any provider. (The end-to-end tests use the real `oidc-provider`.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload, type CryptoKey } from 'jose';

export interface IdTokenPlan {
  iss?: string;
  aud?: string;
  nonce?: string;
  sub?: string;
  sid?: string;
  extra?: Record<string, unknown>;
}

export interface TestIssuer {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** What the next token answer carries. */
  next: IdTokenPlan;
  /** Answer the next token request with this OAuth error instead. */
  nextError?: string;
  tokenRequests: URLSearchParams[];
  logoutToken(claims: JWTPayload, options?: { forged?: boolean; omit?: string[] }): Promise<string>;
}

export async function startTestIssuer(t: Pick<TestContext, 'after'>): Promise<TestIssuer> {
  const keys = await generateKeyPair('ES256', { extractable: true });
  const other = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  let issuer = '';
  const sign = (payload: JWTPayload, key: CryptoKey, typ = 'JWT'): Promise<string> => new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ }).sign(key);
  const state: TestIssuer = {
    issuer: '',
    clientId: 'cohort-test-client',
    clientSecret: 'cohort-test-secret-0123456789',
    next: {},
    tokenRequests: [],
    async logoutToken(claims, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: JWTPayload = { iss: issuer, aud: state.clientId, iat: now, jti: `jti-${Math.random().toString(36).slice(2)}`, events: { 'http://schemas.openid.net/event/backchannel-logout': {} }, ...claims };
      for (const name of options.omit ?? []) delete payload[name];
      return sign(payload, options.forged ? other.privateKey : keys.privateKey, 'logout+jwt');
    },
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        end_session_endpoint: `${issuer}/session/end`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
        code_challenge_methods_supported: ['S256'],
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
      });
    }
    if (url.pathname === '/jwks') return json(200, { keys: [jwk] });
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const params = new URLSearchParams(body);
        state.tokenRequests.push(params);
        if (state.nextError) {
          const error = state.nextError;
          delete state.nextError;
          return json(400, { error });
        }
        const plan = state.next;
        const now = Math.floor(Date.now() / 1000);
        void sign({ iss: plan.iss ?? issuer, aud: plan.aud ?? state.clientId, sub: plan.sub ?? 'alice', iat: now, exp: now + 300, ...(plan.nonce !== undefined ? { nonce: plan.nonce } : {}), ...(plan.sid !== undefined ? { sid: plan.sid } : {}), ...plan.extra }, keys.privateKey).then((idToken) =>
          json(200, { access_token: `at-${Math.random().toString(36).slice(2)}`, token_type: 'Bearer', expires_in: 300, id_token: idToken }),
        );
      });
      return undefined;
    }
    return json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.issuer = issuer;
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return state;
}
