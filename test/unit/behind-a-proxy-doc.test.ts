/**
 * docs/behind-a-proxy.md stays true to the code. The nginx and Caddy configurations it prints
 * are the templates the end-to-end tests run (nginxServerBlock, caddySiteBlock), rendered with
 * the guide's example values, so the tested text and the printed text cannot drift apart. The
 * Traefik and Envoy snippets cannot run here: they are checked against what the doors serve —
 * the routes they name answer as doors (not 404), the gateway key header is the one the doors
 * read, the credential headers are the ones decisions take, and the identity and answer
 * headers they copy are the ones the doors send.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../src/core/clock.js';
import { caddySiteBlock } from '../../src/engine/access/caddy-config.js';
import { DEFAULT_IDENTITY_HEADERS } from '../../src/engine/access/definitions.js';
import { nginxServerBlock } from '../../src/engine/access/nginx-config.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { captureLogger } from '../helpers/transports.js';

const doc = readFileSync(join(PACKAGE_ROOT, 'docs', 'behind-a-proxy.md'), 'utf8');
const IDENTITY = Object.keys(DEFAULT_IDENTITY_HEADERS);
/** The headers a credential arrives in: the session cookie, a bearer (session id or JWT), a client API key. */
const CREDENTIAL_HEADERS = ['cookie', 'authorization', 'x-api-key'];
/** What every door answer carries, and what a deny adds, for the client. */
const ANSWER_HEADERS = ['x-cohort-reason', 'x-cohort-decision-id', 'www-authenticate', 'retry-after'];

/** The first fenced block of `language` in the section under `heading`. */
function snippet(heading: string, language: string): string {
  const start = doc.indexOf(`\n## ${heading}`);
  assert.ok(start >= 0, `section ${heading}`);
  const next = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, next < 0 ? undefined : next);
  const m = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(section);
  assert.ok(m?.[1], `a ${language} block under ${heading}`);
  return m[1];
}

/** The strings of a YAML flow list, `["a", "b"]`, after `key:`. */
function flowList(text: string, key: string): string[] {
  const m = new RegExp(`${key}:\\s*\\[([^\\]]*)\\]`).exec(text);
  assert.ok(m?.[1] !== undefined, key);
  return m[1].split(',').map((s) => s.trim().replace(/^"|"$/g, '')).filter((s) => s !== '');
}

/** The `- exact: name` entries of the YAML block under `key:` (up to the next key at the same or a lower indent). */
function exactPatterns(text: string, key: string): string[] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trim() === `${key}:`);
  assert.ok(at >= 0, key);
  const indent = lines[at]!.search(/\S/);
  const out: string[] = [];
  for (const line of lines.slice(at + 1)) {
    const i = line.search(/\S/);
    if (i <= indent && !line.trim().startsWith('-')) break;
    const m = /-\s*exact:\s*(\S+)/.exec(line);
    if (m?.[1]) out.push(m[1]);
  }
  return out;
}

/** The status and error code a door path answers without a gateway key: a door says AUTH_MISSING_CREDENTIAL, an unknown route 404. */
async function doorAnswer(path: string): Promise<[number, string]> {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  const app = createHttpServer({ logger: captureLogger().logger, bodyLimit: 1024 * 1024, name: 'runtime' });
  registerRuntimeApi(app, { provider, apiKeyHashes: [sha256('node-key-doc-0123456789')], notReadyReasons: () => [], settings: () => runtimeSettings({}), clock, decisionLog: 'none', engineId: 'engine-1' });
  try {
    const r = await app.inject({ method: 'GET', url: path });
    return [r.statusCode, (r.json() as { error: { code: string } }).error.code];
  } finally {
    await app.close();
    await provider.close();
  }
}

describe('docs/behind-a-proxy.md', () => {
  it('prints the nginx server block the end-to-end test runs', () => {
    const rendered = nginxServerBlock({ listen: '80', upstream: 'http://127.0.0.1:3000', cohort: 'http://127.0.0.1:7400', gatewayKey: '<gateway key>' });
    assert.ok(doc.includes('```nginx\n' + rendered + '```'), 'the guide\'s nginx block is nginxServerBlock() with the example values');
  });

  it('prints the Caddy site block the end-to-end test runs', () => {
    const rendered = caddySiteBlock({ site: 'example.com', upstream: '127.0.0.1:3000', cohort: '127.0.0.1:7400', gatewayKey: '<gateway key>' });
    assert.equal(snippet('Caddy forward_auth', 'caddyfile'), rendered, 'the guide\'s Caddy block is caddySiteBlock() with the example values');
  });

  it('Traefik: ForwardAuth names the forward door, sends the gateway key and every credential header, and copies the identity headers the door sends', async () => {
    const yaml = snippet('Traefik ForwardAuth', 'yaml');
    const address = /address:\s*"([^"]+)"/.exec(yaml)?.[1];
    assert.ok(address, 'forwardAuth address');
    const url = new URL(address);
    assert.equal(url.pathname, '/authz/forward');
    assert.deepEqual(await doorAnswer(url.pathname), [401, 'AUTH_MISSING_CREDENTIAL'], 'the address is a door');
    assert.match(yaml, /trustForwardHeader:\s*false/, 'the client\'s own X-Forwarded-* are not trusted');
    const sent = flowList(yaml, 'authRequestHeaders').map((h) => h.toLowerCase());
    for (const h of ['x-cohort-key', ...CREDENTIAL_HEADERS]) assert.ok(sent.includes(h), `authRequestHeaders has ${h}`);
    assert.deepEqual(flowList(yaml, 'authResponseHeaders'), IDENTITY, 'authResponseHeaders are the default identity headers');
    assert.match(yaml, /X-Cohort-Key:\s*"<gateway key>"/, 'the key is added as X-Cohort-Key');
  });

  it('Envoy: ext_authz names the Envoy door, fails closed, sends the gateway key, credential headers and X-Forwarded-For, and passes the identity and answer headers', async () => {
    const yaml = snippet('Envoy ext_authz', 'yaml');
    const prefix = /path_prefix:\s*(\S+)/.exec(yaml)?.[1];
    assert.equal(prefix, '/authz/envoy');
    assert.deepEqual(await doorAnswer(`${prefix}/app/orders`), [401, 'AUTH_MISSING_CREDENTIAL'], 'path_prefix plus the original path is a door');
    assert.match(yaml, /failure_mode_allow:\s*false/);
    assert.match(yaml, /key:\s*X-Cohort-Key\s*\n\s*value:\s*"<gateway key>"/, 'headers_to_add sends the key as X-Cohort-Key');
    const allowed = exactPatterns(yaml, 'allowed_headers');
    for (const h of [...CREDENTIAL_HEADERS, 'x-forwarded-for']) assert.ok(allowed.includes(h), `allowed_headers has ${h}`);
    assert.deepEqual(exactPatterns(yaml, 'allowed_upstream_headers'), IDENTITY.map((h) => h.toLowerCase()), 'allowed_upstream_headers are the default identity headers');
    assert.deepEqual(exactPatterns(yaml, 'allowed_client_headers').sort(), [...ANSWER_HEADERS].sort());
  });

  it('is linked from the README and docs/operations.md', () => {
    assert.match(readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8'), /\(docs\/behind-a-proxy\.md\)/);
    assert.match(readFileSync(join(PACKAGE_ROOT, 'docs', 'operations.md'), 'utf8'), /\(behind-a-proxy\.md\)/);
  });
});
