/**
 * Secrets at rest (core/sealed-secrets.ts): the envelope (round trip, tampering, another
 * place, another key), the key file, and what the walkers of the `apis` and `schedules`
 * sections do with a document: seal, open, redact, keep a stored secret for a placeholder.
 * The key's journey to a replica (role-proofs.ts) is checked here too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCohortError } from '../../src/core/errors.js';
import {
  isSealed,
  keepStoredSecrets,
  loadSecretKeyring,
  openSecrets,
  REDACTED,
  redactSecrets,
  sealSecrets,
  SECRETS_KEY_FILE,
  SecretKeyring,
} from '../../src/core/sealed-secrets.js';
import { apiSecrets, SECTION_SECRETS } from '../../src/policy/config-sections.js';
import { scheduleSecrets } from '../../src/scheduler/schedule-secrets.js';
import { loadAuthority } from '../../src/policy/console-authority.js';
import { openKeyFromConsole, sealKeyForReplica } from '../../src/console/role-proofs.js';
import { tmpDir } from '../helpers/tmp.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(isCohortError(err), String(err));
    return err.code;
  }
};

const PLACE = 'apis/web/login/clientSecret';

describe('sealed secrets: the envelope', () => {
  it('round trip: a sealed value holds nothing of the clear text, opens to it, and differs at every seal', () => {
    const ring = new SecretKeyring([randomBytes(32)]);
    const clear = 'Bearer s3cret-token-é-😀';
    const a = ring.seal(clear, PLACE);
    const b = ring.seal(clear, PLACE);
    assert.ok(isSealed(a));
    assert.match(a, /^\$cohort-sealed\$v1\$[0-9a-f]{16}\$[A-Za-z0-9_-]+$/);
    assert.ok(!a.includes('s3cret'));
    assert.notEqual(a, b, 'a fresh IV each time');
    assert.equal(ring.open(a, PLACE), clear);
    assert.equal(ring.open(b, PLACE), clear);
    assert.equal(ring.open('', PLACE), '', 'a value saved before sealing existed is returned as it is');
    assert.equal(ring.open(ring.seal('', PLACE), PLACE), '');
  });

  it('a tampered envelope, or one moved to another place, is SECRET_TAMPERED, never a wrong value', () => {
    const ring = new SecretKeyring([randomBytes(32)]);
    const sealed = ring.seal('s3cret', PLACE);
    const body = sealed.slice(sealed.lastIndexOf('$') + 1);
    const raw = Buffer.from(body, 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const flipped = Buffer.from(raw);
      flipped[i]! ^= 0x01;
      assert.equal(code(() => ring.open(sealed.replace(body, flipped.toString('base64url')), PLACE)), 'SECRET_TAMPERED', `byte ${i} flipped`);
    }
    assert.equal(code(() => ring.open(sealed, 'apis/other/login/clientSecret')), 'SECRET_TAMPERED', 'moved to another API');
    assert.equal(code(() => ring.open(sealed.slice(0, -4), PLACE)), 'SECRET_TAMPERED', 'cut short');
    assert.equal(code(() => ring.open(`${sealed}$x`, PLACE)), 'SECRET_TAMPERED', 'a part too many');
    assert.equal(code(() => ring.open(sealed.replace('$v1$', '$v9$'), PLACE)), 'SECRET_TAMPERED', 'an unknown version');
    assert.equal(code(() => ring.open('$cohort-sealed$v1$0123456789abcdef$AAAA', PLACE)), 'SECRET_KEY_UNKNOWN', 'short, but the key is checked first');
    assert.equal(code(() => ring.open(`$cohort-sealed$v1$${ring.currentId}$AAAA`, PLACE)), 'SECRET_TAMPERED', 'too short to hold an IV and a tag');
  });

  it('a value sealed with another key is SECRET_KEY_UNKNOWN; a ring that adopted a new key still opens what its old one sealed', () => {
    const mine = randomBytes(32);
    const ring = new SecretKeyring([mine]);
    const other = new SecretKeyring([randomBytes(32)]);
    const sealed = other.seal('s3cret', PLACE);
    assert.equal(code(() => ring.open(sealed, PLACE)), 'SECRET_KEY_UNKNOWN');
    assert.equal(code(() => new SecretKeyring().open(sealed, PLACE)), 'SECRET_KEY_UNKNOWN', 'a ring without a key');
    assert.equal(code(() => new SecretKeyring().seal('s3cret', PLACE)), 'SECRET_KEY_UNKNOWN', 'seals nothing');
    const old = ring.seal('old', PLACE);
    assert.equal(ring.adopt(other.currentKey!), true);
    assert.equal(ring.adopt(other.currentKey!), false, 'already the current key');
    assert.equal(ring.currentId, other.currentId);
    assert.equal(ring.open(sealed, PLACE), 's3cret');
    assert.equal(ring.open(old, PLACE), 'old');
    assert.equal(code(() => ring.adopt(randomBytes(16))), 'NODE_SECRETS_KEY_INVALID');
  });
});

describe('sealed secrets: the key file', () => {
  it('is created 0600 on a console\'s first start, read back the same, and written again when a key is adopted', (t) => {
    const dir = tmpDir(t);
    const path = join(dir, SECRETS_KEY_FILE);
    assert.equal(loadSecretKeyring(dir, false).currentId, undefined, 'a replica or engine creates none');
    assert.equal(existsSync(path), false);
    const ring = loadSecretKeyring(dir, true);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const sealed = ring.seal('s3cret', PLACE);
    const again = loadSecretKeyring(dir, true);
    assert.equal(again.currentId, ring.currentId, 'not created twice');
    assert.equal(again.open(sealed, PLACE), 's3cret');
    const next = randomBytes(32);
    again.adopt(next);
    const reread = loadSecretKeyring(dir, false);
    assert.deepEqual(reread.ids, again.ids);
    assert.equal(reread.currentKey!.equals(next), true);
    assert.equal(reread.open(sealed, PLACE), 's3cret');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.ok(!readFileSync(path, 'utf8').includes('s3cret'));
  });

  it('a file holding something else than keys stops the node (NODE_SECRETS_KEY_INVALID) instead of sealing with a new key', (t) => {
    const dir = tmpDir(t);
    const path = join(dir, SECRETS_KEY_FILE);
    for (const text of ['', '# only a comment\n', 'not a key\n', `${randomBytes(16).toString('base64url')}\n`]) {
      writeFileSync(path, text, { mode: 0o600 });
      assert.equal(code(() => loadSecretKeyring(dir, true)), 'NODE_SECRETS_KEY_INVALID', JSON.stringify(text));
    }
  });
});

describe('sealed secrets: documents', () => {
  const apis = {
    apis: [
      { id: 'plain', pathPrefix: '/p' },
      { id: 'web', pathPrefix: '/app', login: { issuer: 'https://idp', clientId: 'c', clientSecret: 'login-s3cret' }, upstreamToken: { tokenEndpoint: 'https://idp/token', clientId: 'c', clientSecret: 'upstream-s3cret', grant: 'client-credentials' } },
    ],
  };
  const schedules = {
    schedules: [
      { id: 'nightly', type: 'http', http: { url: 'https://ops', headers: { Authorization: 'Bearer hdr-s3cret', 'X-Trace': 'visible-but-sealed' } } },
      { id: 'purge', type: 'purge-expired' },
    ],
  };

  it('the sections with secrets are apis (client secrets) and schedules (header values), placed by id', () => {
    assert.deepEqual(Object.keys(SECTION_SECRETS).sort(), ['apis', 'schedules']);
    const seen: string[] = [];
    apiSecrets(apis, (v, place, pointer) => (seen.push(`${place} ${pointer} ${v}`), v));
    scheduleSecrets(schedules, (v, place, pointer) => (seen.push(`${place} ${pointer} ${v}`), v));
    assert.deepEqual(seen, [
      'apis/web/login/clientSecret /apis/1/login/clientSecret login-s3cret',
      'apis/web/upstreamToken/clientSecret /apis/1/upstreamToken/clientSecret upstream-s3cret',
      'schedules/nightly/http/headers/Authorization /schedules/0/http/headers/Authorization Bearer hdr-s3cret',
      'schedules/nightly/http/headers/X-Trace /schedules/0/http/headers/X-Trace visible-but-sealed',
    ]);
    for (const odd of [null, 3, 'x', { apis: 'no' }, { apis: [null, { pathPrefix: '/' }, { id: 'x', login: 'y' }] }, { schedules: [{ id: 'a', http: { headers: { h: 3 } } }] }]) {
      assert.deepEqual(apiSecrets(odd, () => 'changed'), odd);
      assert.deepEqual(scheduleSecrets(odd, () => 'changed'), odd);
    }
  });

  it('seals every secret and nothing else, opens them back, redacts them without a key', () => {
    const ring = new SecretKeyring([randomBytes(32)]);
    for (const [walk, doc] of [[apiSecrets, apis], [scheduleSecrets, schedules]] as const) {
      const sealed = sealSecrets(walk, doc, ring);
      const text = JSON.stringify(sealed);
      assert.ok(!/s3cret|visible-but-sealed/.test(text), text);
      assert.deepEqual(openSecrets(walk, sealed, ring), doc);
      const redacted = JSON.stringify(redactSecrets(walk, sealed));
      assert.ok(!/s3cret|visible-but-sealed|cohort-sealed/.test(redacted));
      assert.ok(redacted.includes(REDACTED));
      // The rest of the document is untouched.
      assert.deepEqual(redactSecrets(walk, sealed), walk(doc, () => REDACTED));
    }
  });

  it('saving unchanged keeps the stored envelopes; a changed secret is sealed anew', () => {
    const ring = new SecretKeyring([randomBytes(32)]);
    const stored = sealSecrets(apiSecrets, apis, ring);
    assert.deepEqual(sealSecrets(apiSecrets, apis, ring, stored), stored);
    const changed = structuredClone(apis);
    changed.apis[1]!.login!.clientSecret = 'new-s3cret';
    const next = sealSecrets(apiSecrets, changed, ring, stored) as typeof apis;
    assert.notEqual(next.apis[1]!.login!.clientSecret, (stored as typeof apis).apis[1]!.login!.clientSecret);
    assert.equal(next.apis[1]!.upstreamToken!.clientSecret, (stored as typeof apis).apis[1]!.upstreamToken!.clientSecret);
    assert.equal(ring.open(next.apis[1]!.login!.clientSecret, 'apis/web/login/clientSecret'), 'new-s3cret');
  });

  it('a placeholder keeps the secret stored at its place; with none stored, or an envelope that does not open, it is a problem', () => {
    const ring = new SecretKeyring([randomBytes(32)]);
    const stored = sealSecrets(apiSecrets, apis, ring);
    const redacted = redactSecrets(apiSecrets, stored);
    // The list reordered: secrets follow their API by id.
    const reordered = { apis: [...(redacted as typeof apis).apis].reverse() };
    const kept = keepStoredSecrets(apiSecrets, reordered, stored, ring);
    assert.deepEqual(kept.problems, []);
    assert.deepEqual(openSecrets(apiSecrets, kept.content, ring), { apis: [...apis.apis].reverse() });

    const renamed = { apis: [{ ...(redacted as typeof apis).apis[1]!, id: 'web2' }] };
    assert.deepEqual(keepStoredSecrets(apiSecrets, renamed, stored, ring).problems, [
      '/apis/0/login/clientSecret: "********" stands for the stored secret, but none is stored here; write the secret itself',
      '/apis/0/upstreamToken/clientSecret: "********" stands for the stored secret, but none is stored here; write the secret itself',
    ]);
    const foreign = sealSecrets(apiSecrets, apis, new SecretKeyring([randomBytes(32)]));
    assert.match(keepStoredSecrets(apiSecrets, foreign, stored, ring).problems.join('\n'), /\/apis\/1\/login\/clientSecret: a sealed value that does not open on this console \(SECRET_KEY_UNKNOWN\)/);
  });
});

describe('sealed secrets: the key on its way to a replica', () => {
  it('opens only with the console authority and the nonce it was sealed for', (t) => {
    const authority = loadAuthority(tmpDir(t), true)!;
    const other = loadAuthority(tmpDir(t), true)!;
    const key = randomBytes(32);
    const sealed = sealKeyForReplica(authority, 'nonce-1', key);
    assert.ok(!sealed.includes(key.toString('base64url')));
    assert.equal(openKeyFromConsole(authority, 'nonce-1', sealed, 'console').equals(key), true);
    assert.equal(code(() => openKeyFromConsole(authority, 'nonce-2', sealed, 'console')), 'CONSOLE_ROLE_UNPROVEN');
    assert.equal(code(() => openKeyFromConsole(other, 'nonce-1', sealed, 'console')), 'CONSOLE_ROLE_UNPROVEN');
    assert.equal(code(() => openKeyFromConsole(authority, 'nonce-1', 'AAAA', 'console')), 'CONSOLE_ROLE_UNPROVEN');
    assert.equal(code(() => openKeyFromConsole(authority, 'nonce-1', 42, 'console')), 'CONSOLE_ROLE_UNPROVEN');
  });
});
