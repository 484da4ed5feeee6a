/**
 * The `login` and `upstreamToken` fields of the `apis` section: what the console refuses
 * before any engine sees it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isHttpsOrLoopback, sectionErrors } from '../../src/policy/config-sections.js';

const login = { issuer: 'https://idp.example/realms/shop', clientId: 'shop', clientSecret: 's3cret' };
const token = { tokenEndpoint: 'https://idp.example/token', clientId: 'gw', clientSecret: 's', grant: 'token-exchange', audience: 'orders' };
const errors = (api: Record<string, unknown>): string[] => sectionErrors('apis', { apis: [{ id: 'shop', pathPrefix: '/app', ...api }] });

describe('apis: login and upstreamToken', () => {
  it('accepts a complete definition', () => {
    assert.deepEqual(errors({ login: { ...login, scopes: ['email', 'profile'], claims: ['email'], postLogoutRedirect: '/app/bye' }, upstreamToken: token }), []);
    assert.deepEqual(errors({ upstreamToken: { ...token, grant: 'client-credentials' } }), []);
  });

  it('allows plain http only for a loopback issuer or token endpoint', () => {
    assert.deepEqual(errors({ login: { ...login, issuer: 'http://127.0.0.1:8080' } }), []);
    assert.deepEqual(errors({ login: { ...login, issuer: 'http://localhost:8080/realms/x' } }), []);
    assert.deepEqual(errors({ login: { ...login, issuer: 'http://[::1]:8080' } }), []);
    assert.match(errors({ login: { ...login, issuer: 'http://idp.example' } }).join(), /login\/issuer: .* must be https/);
    assert.match(errors({ upstreamToken: { ...token, grant: 'client-credentials', tokenEndpoint: 'http://10.0.0.5/token' } }).join(), /tokenEndpoint: .* must be https/);
    assert.equal(isHttpsOrLoopback('http://127.0.0.1.evil.example/'), false);
    assert.equal(isHttpsOrLoopback('ftp://127.0.0.1/'), false);
    assert.equal(isHttpsOrLoopback('not a url'), false);
  });

  it('refuses what could not work: login without session credentials, token exchange without login, missing or unknown fields', () => {
    assert.match(errors({ credentials: ['jwt'], jwt: { keys: [{ kty: 'EC' }] }, login }).join(), /credentials must include session/);
    assert.match(errors({ upstreamToken: token }).join(), /token-exchange .* needs login/);
    assert.ok(errors({ login: { issuer: login.issuer, clientId: 'x' } }).length > 0, 'clientSecret is required');
    assert.ok(errors({ login: { ...login, extra: 1 } }).length > 0, 'unknown field');
    assert.ok(errors({ login: { ...login, scopes: ['a b'] } }).length > 0, 'a scope has no space');
    assert.ok(errors({ login: { ...login, postLogoutRedirect: 'https://evil.example/' } }).length > 0, 'a path, not a URL');
    assert.ok(errors({ upstreamToken: { ...token, grant: 'password' } }).length > 0, 'grant');
  });
});
