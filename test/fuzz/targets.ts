/**
 * Property-based fuzzing of everything that reads bytes from outside: the frame codec, the
 * handshake messages, the INI parser, saved grid state and record lines, the console's
 * configuration documents, the admin API's bodies, the runtime API's bodies and the forward-auth
 * door's headers. The property is always the same: a clear coded error (or a well-formed result),
 * the process alive, nothing changed.
 *
 * Each target is run two ways: a short run inside `npm test` (test/unit/fuzz-smoke.test.ts)
 * and a long one by `npm run fuzz` (test/fuzz/main.ts), which prints the cases tried per target.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import fc from 'fast-check';
import { ManualClock, systemClock } from '../../src/core/clock.js';
import { Secret } from '../../src/config/secret.js';
import { isCohortError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import { buildNodeConfig } from '../../src/config/node-config.js';
import { ConfigService } from '../../src/console/config-service.js';
import { AdminAuth } from '../../src/console/admin-auth.js';
import { registerAdminApi } from '../../src/console/admin-api.js';
import { hashPassword } from '../../src/console/passwords.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { GRID_STATE_FILE, loadGridState, saveGridState } from '../../src/state/grid/grid-state-file.js';
import { CONFIG_SECTIONS } from '../../src/policy/config-sections.js';
import { openRepository } from '../../src/repository/open-repository.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { GridStore } from '../../src/state/grid/grid-store.js';
import { parseRecordLine, parseRecordLines, recordLine } from '../../src/state/grid/record-lines.js';
import { encodeFrame, FrameDecoder } from '../../src/transport/frame-codec.js';
import { CIPHER_SLICE_BYTES, FrameOpener, FrameSealer } from '../../src/transport/secure-channel.js';
import { decodeHandshakeMessage, encodeHandshakeMessage, HandshakeType } from '../../src/transport/handshake.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { SecretKeyring } from '../../src/core/sealed-secrets.js';
import { createHash, randomBytes } from 'node:crypto';

export interface FuzzTarget {
  name: string;
  /** Runs `runs` cases (or until `deadline`, ms since the epoch); returns the cases tried. */
  run(runs: number, deadline?: number): Promise<number>;
}

/** Runs an async property, counting cases; a failure throws fast-check's report (seed, path, counterexample). */
async function check<T>(arb: fc.Arbitrary<T>, body: (value: T) => Promise<void> | void, runs: number, deadline?: number): Promise<number> {
  let tried = 0;
  await fc.assert(
    fc.asyncProperty(arb, async (value) => {
      tried++;
      await body(value);
    }),
    { numRuns: runs, ...(deadline !== undefined ? { interruptAfterTimeLimit: Math.max(1, deadline - Date.now()), markInterruptAsFailure: false } : {}) },
  );
  return tried;
}

/** A thrown error must be a CohortError with one of `codes`. */
function expectCoded(err: unknown, codes: readonly string[], what: string): void {
  if (!isCohortError(err) || !codes.includes(err.code)) {
    throw new Error(`${what}: expected a coded error (${codes.join(', ')}), got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
/** Text mostly made of what the parser looks for, with arbitrary characters between. */
const iniText = fc
  .array(
    fc.oneof(
      fc.constantFrom('[node]', '[cluster]', '[http]', '[state]', '[access]', '[tls]', '[x', ']', '=', ';', '#', '\n', '\r\n', '"', "'", '\\', ' '),
      fc.constantFrom('id', 'role', 'mode', 'data_dir', 'peers', 'secret_key', 'runtime', 'admin', 'body_limit', 'profile', 'replication_factor'),
      fc.constantFrom('engine', 'console', 'inline', '127.0.0.1:0', '-1', '1e309', '0x10', 'true', 'ÿ', '\u0000'),
      fc.string({ maxLength: 12 }),
    ),
    { maxLength: 60 },
  )
  .map((parts) => parts.join(''));

/** Writes `data` to `address` and waits for the listener to close the connection (or 2 s). */
function sendRaw(address: string, data: Buffer): Promise<void> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) }, () => socket.end(data));
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export const TARGETS: FuzzTarget[] = [
  {
    name: 'cluster port',
    run: async (runs, deadline) => {
      const secret = 'fuzz-cluster-secret-0123456789';
      const options = { clusterId: 'fuzz', bind: { host: '127.0.0.1', port: 0 }, clock: systemClock, logger: silentLogger(), handshakeTimeoutMs: 500 };
      const listener = new TcpTransport({ ...options, nodeId: 'listener', secret: new Secret(secret) });
      const dialer = new TcpTransport({ ...options, nodeId: 'dialer', secret: new Secret(secret) });
      const received: string[] = [];
      await listener.start({ onMessage: (_from, _channel, payload) => received.push(Buffer.from(payload).toString()), onPeerDown() {}, onRefused() {} });
      await dialer.start({ onMessage() {}, onPeerDown() {}, onRefused() {} });
      try {
        let n = 0;
        return await check(
          fc.oneof(
            bytes(200),
            // A plausible frame header with a hostile length, then garbage.
            fc.tuple(fc.nat(0xffff_ffff), bytes(64)).map(([length, rest]) => {
              const head = Buffer.alloc(4);
              head.writeUInt32BE(length);
              return Buffer.concat([head, rest]);
            }),
            fc.tuple(fc.integer({ min: 0, max: 7 }), fc.jsonValue({ maxDepth: 2 })).map(([type, body]) => encodeFrame(Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body) ?? '')]))),
          ),
          async (data) => {
            await sendRaw(listener.localAddress, data);
            // Every 25 cases, the listener still opens a real connection and delivers.
            if (++n % 25 === 0) {
              const marker = `still-alive-${n}`;
              dialer.send(listener.localAddress, 'control', Buffer.from(marker));
              const until = Date.now() + 5000;
              while (!received.includes(marker) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
              assert.ok(received.includes(marker), 'the listener stopped accepting real peers');
            }
          },
          runs,
          deadline,
        );
      } finally {
        await dialer.close();
        await listener.close();
      }
    },
  },
  {
    name: 'frame codec',
    run: (runs, deadline) =>
      check(
        fc.record({ bodies: fc.array(bytes(300), { maxLength: 8 }), garbage: bytes(64), cuts: fc.array(fc.nat(2000), { maxLength: 10 }), limit: fc.integer({ min: 1, max: 400 }) }),
        ({ bodies, garbage, cuts, limit }) => {
          const stream = Buffer.concat([...bodies.map((b) => encodeFrame(b)), garbage]);
          const decoder = new FrameDecoder(limit);
          // A second decoder fed the same chunks hands frames over as views (nextParts): the same frames.
          const inParts = new FrameDecoder(limit);
          const out: Buffer[] = [];
          const outOfParts: Buffer[] = [];
          let at = 0;
          for (const cut of [...cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b), stream.length]) {
            if (cut < at) continue;
            decoder.push(stream.subarray(at, cut));
            inParts.push(stream.subarray(at, cut));
            at = cut;
            for (let f = decoder.next(); f !== undefined; f = decoder.next()) out.push(Buffer.from(f));
            for (let f = inParts.nextParts(); f !== undefined; f = inParts.nextParts()) outOfParts.push(Buffer.concat(f));
          }
          assert.deepEqual(outOfParts, out);
          assert.equal(inParts.oversizedLength, decoder.oversizedLength);
          // Every frame returned is within the limit and is the next body sent, in order.
          for (const [i, f] of out.entries()) {
            assert.ok(f.length <= limit);
            if (i < bodies.length) assert.deepEqual(f, bodies[i]);
          }
          const firstTooBig = bodies.findIndex((b) => b.length > limit);
          if (firstTooBig >= 0) assert.ok(out.length <= firstTooBig && decoder.oversizedLength !== undefined);
        },
        runs,
        deadline,
      ),
  },
  {
    name: 'sealed frames',
    run: (runs, deadline) => {
      const key = randomBytes(32);
      // Payloads around and past the cipher's slice size too, where a frame is sealed and opened in slices.
      const payload = fc.oneof(
        bytes(300),
        fc.record({ size: fc.oneof(fc.integer({ min: CIPHER_SLICE_BYTES - 30, max: CIPHER_SLICE_BYTES + 30 }), fc.integer({ min: 2 * CIPHER_SLICE_BYTES, max: 5 * CIPHER_SLICE_BYTES })), fill: fc.nat(255) }).map(({ size, fill }) => Buffer.alloc(size, fill)),
      );
      return check(
        fc.record({ payload, cuts: fc.array(fc.nat(6 * CIPHER_SLICE_BYTES), { maxLength: 6 }), flip: fc.option(fc.nat(6 * CIPHER_SLICE_BYTES), { nil: undefined }) }),
        ({ payload, cuts, flip }) => {
          const sealer = new FrameSealer(key, 'fuzz');
          const opener = new FrameOpener(key, 'fuzz');
          const body = Buffer.concat(sealer.sealParts(payload)).subarray(4);
          const parts: Buffer[] = [];
          let from = 0;
          for (const cut of [...cuts.map((c) => c % (body.length + 1)).sort((a, b) => a - b), body.length]) {
            parts.push(body.subarray(from, cut));
            from = cut;
          }
          if (flip !== undefined) {
            const tampered = Buffer.from(body);
            tampered[flip % body.length]! ^= 0x01;
            assert.equal(opener.open(tampered), 'rejected');
          }
          assert.deepEqual(opener.open(parts), payload);
          assert.equal(opener.open(parts), 'replayed');
        },
        runs,
        deadline,
      );
    },
  },
  {
    name: 'handshake messages',
    run: (runs, deadline) =>
      check(
        fc.oneof(
          bytes(600),
          fc.record({ type: fc.integer({ min: 0, max: 7 }), body: fc.jsonValue({ maxDepth: 3 }) }).map(({ type, body }) => Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body) ?? '')])),
          fc
            .record({
              type: fc.constantFrom(...Object.values(HandshakeType)),
              protoMin: fc.oneof(fc.integer({ min: -2, max: 70_000 }), fc.constant('2')),
              protoMax: fc.integer({ min: -2, max: 70_000 }),
              channel: fc.constantFrom('control', 'bulk', 'x'),
              nonce: fc.oneof(bytes(40).map((b) => b.toString('base64')), fc.string()),
              mac: bytes(40).map((b) => b.toString('base64')),
              sealed: bytes(3200).map((b) => b.toString('base64')),
              choice: fc.integer({ min: -1, max: 5 }),
              proofs: fc.array(fc.record({ mac: bytes(40).map((b) => b.toString('base64')), sealed: bytes(200).map((b) => b.toString('base64')) }), { maxLength: 5 }),
              code: fc.string({ maxLength: 20 }),
              message: fc.string({ maxLength: 1100 }),
              proto: fc.integer({ min: -1, max: 3 }),
            })
            .map(({ type, ...body }) => Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body))])),
        ),
        (frame) => {
          const msg = decodeHandshakeMessage(frame);
          // Whatever decodes re-encodes to a message that decodes the same (no half-checked fields).
          if (msg !== undefined) assert.deepEqual(decodeHandshakeMessage(encodeHandshakeMessage(msg)), msg);
        },
        runs,
        deadline,
      ),
  },
  {
    name: 'INI configuration files',
    run: (runs, deadline) =>
      check(
        iniText,
        (text) => {
          try {
            buildNodeConfig(parseConfigText(text, 'fuzz.ini'), 'fuzz.ini', {});
          } catch (err) {
            if (!isCohortError(err) || !err.code.startsWith('CONFIG_')) {
              throw new Error(`not a CONFIG_ error for ${JSON.stringify(text)}: ${String(err)}`);
            }
          }
        },
        runs,
        deadline,
      ),
  },
  {
    name: 'record lines',
    run: (runs, deadline) => {
      const clock = new ManualClock(1_800_000_000_000);
      const store = new GridStore(clock, 'engine-1');
      store.set('session', 's-1', { subject: 'alice' }, clock.now() + 60_000, 3, 'alice');
      let valid = '';
      store.eachRecord(3, (ns, key, r) => (valid = recordLine(ns, key, r)));
      return check(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.tuple(fc.nat(valid.length), fc.nat(valid.length), fc.string({ maxLength: 8 })).map(([a, b, s]) => valid.slice(0, Math.min(a, b)) + s + valid.slice(Math.max(a, b))),
          fc.array(fc.oneof(fc.constant(valid), fc.string({ maxLength: 40 })), { maxLength: 6 }).map((lines) => lines.join('\n')),
        ),
        (text) => {
          const one = parseRecordLine(text);
          if (one) assert.ok(Number.isSafeInteger(one.record.version) && typeof one.key === 'string');
          const { changes, damaged } = parseRecordLines(text);
          assert.ok(changes.length + damaged <= text.split('\n').length);
        },
        runs,
        deadline,
      );
    },
  },
  {
    name: 'saved grid state',
    run: async (runs, deadline) => {
      const dir = mkdtempSync(join(tmpdir(), 'cohort-fuzz-state-'));
      try {
        const clock = new ManualClock(1_800_000_000_000);
        const source = new GridStore(clock, 'engine-1');
        for (let i = 0; i < 20; i++) source.set('session', `s-${i}`, { subject: `u-${i % 3}` }, clock.now() + 3_600_000, i % 5, `u-${i % 3}`);
        await saveGridState(source, dir);
        const good = readFileSync(join(dir, GRID_STATE_FILE));
        return await check(
          fc.oneof(
            fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => {
              const b = Buffer.from(good);
              for (const [at, x] of flips) b[at]! ^= x;
              return b;
            }),
            fc.nat(good.length - 1).map((n) => good.subarray(0, n)),
            bytes(400),
          ),
          async (file) => {
            writeFileSync(join(dir, GRID_STATE_FILE), file);
            const target = new GridStore(clock, 'engine-2');
            target.set('session', 'mine', { subject: 'keep' }, clock.now() + 3_600_000, 1, 'keep');
            try {
              await loadGridState(target, dir);
              // Only an intact file loads (a flip that changed nothing is impossible: x ≠ 0).
              assert.ok(file.equals(good), 'a damaged file was loaded');
            } catch (err) {
              expectCoded(err, ['GRID_STATE_DAMAGED'], 'saved grid state');
              assert.equal(target.size(), 1, 'a damaged file changed the store');
            }
            rmSync(join(dir, `${GRID_STATE_FILE}.damaged`), { force: true });
          },
          runs,
          deadline,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'configuration documents',
    run: async (runs, deadline) => {
      const clock = new ManualClock(1_800_000_000_000);
      const repo = await openRepository('sqlite::memory:', { clock });
      try {
        const config = new ConfigService(repo, clock, 'console', () => true, new SecretKeyring([randomBytes(32)]));
        const editable = CONFIG_SECTIONS.filter((s) => s !== 'api-keys' && s !== 'schedules');
        return await check(
          fc.record({ section: fc.constantFrom(...editable), content: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.object({ maxDepth: 3 })) }),
          async ({ section, content }) => {
            const before = (await config.get(section, 'clear')).version;
            try {
              await config.put(section, content, { user: 'fuzz', role: 'admin' });
            } catch (err) {
              expectCoded(err, ['CONSOLE_DOCUMENT_INVALID'], `${section} document ${JSON.stringify(content).slice(0, 200)}`);
              assert.equal((await config.get(section, 'clear')).version, before, 'a refused document changed the version');
            }
          },
          runs,
          deadline,
        );
      } finally {
        await repo.close();
      }
    },
  },
  {
    name: 'admin API bodies',
    run: async (runs, deadline) => {
      const clock = new ManualClock(1_800_000_000_000);
      const repo = await openRepository('sqlite::memory:', { clock });
      // A small budget: fuzzed sign-ins soon stop paying for scrypt (refused before the check).
      const auth = new AdminAuth({
        repository: repo, clock, tokenTtlMs: 86_400_000, maxFailures: 5, lockoutMs: 60_000, userMaxFailures: 20,
        sourceBurst: 5, sourcePerMinute: 1, maxConcurrent: 2, log: silentLogger(), nodeId: 'console', auditsFailures: () => true,
      });
      for (const [name, role] of [['admin', 'admin'], ['audrey', 'auditor']] as const) {
        await repo.createAdminUser({ name, passwordHash: await hashPassword(`${name}-password`), role, createdAt: clock.now() }, 'fuzz', 'console');
      }
      const tokens = {
        admin: (await auth.login('admin', 'admin-password', '198.51.100.1')).token,
        auditor: (await auth.login('audrey', 'audrey-password', '198.51.100.2')).token,
      };
      const config = new ConfigService(repo, clock, 'console', () => true, new SecretKeyring([randomBytes(32)]));
      const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'admin' });
      await registerAdminApi(app, {
        auth,
        config,
        repository: repo,
        cluster: async () => ({ clusterId: 'fuzz', role: 'console', epoch: 0, configVersion: 0, mixedVersions: false, versions: [], nodes: [], notes: [] }),
      });
      await app.ready();
      // A stored secret, so that placeholders in fuzzed documents have something to keep.
      await config.put('apis', { apis: [{ id: 'web', pathPrefix: '/app', login: { issuer: 'https://idp.example', clientId: 'c', clientSecret: 'fuzz-s3cret' } }] }, { user: 'fuzz', role: 'admin' });
      // Every route with a body; logout is left out (it would end the session the next cases use).
      const routes = [
        ['POST', '/admin/v1/login'],
        ['PUT', '/admin/v1/config/runtime'],
        ['PUT', '/admin/v1/config/services'],
        ['PUT', '/admin/v1/config/apis'],
        ['PUT', '/admin/v1/config/schedules'],
        ['PUT', '/admin/v1/config/nope'],
        ['POST', '/admin/v1/api-keys'],
        ['DELETE', '/admin/v1/api-keys/none'],
        ['PUT', '/admin/v1/schedules/s-1'],
        ['DELETE', '/admin/v1/schedules/none'],
        ['POST', '/admin/v1/apis/test'],
        ['POST', '/admin/v1/replica/promote'],
      ].map(([method, url]) => ({ method: method as 'POST' | 'PUT' | 'DELETE', url: url! }));
      const text = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', '********', '$cohort-sealed$v1$0123456789abcdef$AAAA', 'https://idp.example', '/app', 'admin'));
      const shaped = fc.oneof(
        fc.record({ user: text, password: text, cookie: fc.oneof(fc.boolean(), text) }, { requiredKeys: [] }),
        fc.record({ name: text, scope: fc.oneof(fc.constantFrom('runtime', 'gateway', 'client', 'read'), text) }, { requiredKeys: [] }),
        fc.record({
          apis: fc.array(fc.record({ id: text, pathPrefix: text, login: fc.record({ issuer: text, clientId: text, clientSecret: text }, { requiredKeys: [] }), upstreamToken: fc.record({ tokenEndpoint: text, clientId: text, clientSecret: text, grant: text }, { requiredKeys: [] }) }, { requiredKeys: [] }), { maxLength: 3 }),
        }, { requiredKeys: [] }),
        fc.record({
          id: text, type: fc.oneof(fc.constantFrom('http', 'purge-expired', 'config-backup'), text), intervalSeconds: fc.oneof(fc.integer(), fc.double(), text), cron: text, timezone: text,
          http: fc.record({ url: text, method: text, headers: fc.dictionary(text, text, { maxKeys: 3 }), body: text }, { requiredKeys: [] }),
        }, { requiredKeys: [] }),
        fc.record({ request: fc.record({ method: text, url: text, sourceIp: text, headers: fc.dictionary(text, fc.oneof(text, fc.array(text, { maxLength: 2 })), { maxKeys: 3 }) }, { requiredKeys: [] }), apis: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: [] }),
        fc.record({ force: fc.oneof(fc.boolean(), text), lockout: fc.jsonValue({ maxDepth: 2 }), defaultRateLimit: fc.jsonValue({ maxDepth: 2 }), sessions: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }),
      );
      /** What a refusal must leave as it was: the configuration, the trail, the users and tokens. */
      const stored = async () => JSON.stringify([await repo.getCurrentConfig(), await repo.listAudit({ limit: 1000 }), await repo.listAdminUsers(), await repo.listAdminTokens(0)]);
      try {
        return await check(
          fc.record({
            route: fc.constantFrom(...routes),
            body: fc.oneof(
              fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? ''),
              shaped.map((v) => JSON.stringify(v)),
              bytes(300).map((b) => b.toString('latin1')),
              fc.constant(''),
            ),
            contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded'),
            who: fc.constantFrom('admin', 'auditor', 'nobody', 'forged'),
          }),
          async ({ route: { method, url }, body, contentType, who }) => {
            const before = await stored();
            const bearer = who === 'admin' || who === 'auditor' ? tokens[who] : who === 'forged' ? 'not-a-token' : undefined;
            const r = await app.inject({ method, url, payload: body, headers: { 'content-type': contentType, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) } });
            const what = `${who} ${method} ${url} ${contentType} ${JSON.stringify(body).slice(0, 200)} → ${r.statusCode} ${r.body.slice(0, 300)}`;
            assert.ok(r.statusCode < 500, what);
            if (r.statusCode >= 400) {
              const err = r.json() as { error?: { code?: unknown; message?: unknown } };
              assert.ok(typeof err.error?.code === 'string' && typeof err.error.message === 'string', `uncoded: ${what}`);
              assert.equal(await stored(), before, `refused but changed stored data: ${what}`);
            }
            if (who === 'auditor') assert.ok(!r.body.includes('fuzz-s3cret'), `an auditor read a secret: ${what}`);
          },
          runs,
          deadline,
        );
      } finally {
        await app.close();
        await repo.close();
      }
    },
  },
  {
    name: 'runtime API bodies',
    run: async (runs, deadline) => {
      const KEY = 'fuzz-runtime-key-0123456789';
      const clock = new ManualClock(1_800_000_000_000);
      const { provider, store } = localGrid(clock);
      const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'runtime' });
      registerRuntimeApi(app, { provider, apiKeyHashes: [sha256(KEY)], notReadyReasons: () => [], settings: () => runtimeSettings({}) });
      await app.ready();
      const routes = [
        ['POST', '/runtime/v1/sessions'],
        ['POST', '/runtime/v1/revocations'],
        ['POST', '/runtime/v1/replay'],
        ['PUT', '/runtime/v1/artifacts/a-1'],
        ['POST', '/runtime/v1/artifacts/a-1/resolve'],
        ['PUT', '/runtime/v1/state/k-1'],
        ['PUT', '/runtime/v1/tokens/t-1'],
        ['POST', '/runtime/v1/lockout/alice/failures'],
        ['POST', '/runtime/v1/ratelimit/default/alice'],
        ['POST', '/runtime/v1/decide'],
        ['POST', '/runtime/v1/decide/response'],
        ['DELETE', '/runtime/v1/sessions/x'],
      ].map(([method, url]) => ({ method: method as 'POST' | 'PUT' | 'DELETE', url: url! }));
      try {
        return await check(
          fc.record({
            route: fc.constantFrom(...routes),
            body: fc.oneof(
              fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? ''),
              fc.record({ subject: fc.string(), id: fc.string(), ttlSeconds: fc.oneof(fc.integer(), fc.double(), fc.string()), payload: fc.string(), value: fc.jsonValue({ maxDepth: 2 }) }).map((v) => JSON.stringify(v)),
              bytes(300).map((b) => b.toString('latin1')),
              fc.constant(''),
            ),
            contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded'),
            door: fc.boolean(),
          }),
          async ({ route: { method, url }, body, contentType, door }) => {
            const recordsBefore = store.size();
            const r = await app.inject({
              method,
              url,
              payload: body,
              headers: { 'content-type': contentType, ...(door ? { 'x-cohort-key': KEY } : { authorization: `Bearer ${KEY}` }) },
            });
            assert.ok(r.statusCode < 500, `${method} ${url} ${contentType} ${JSON.stringify(body).slice(0, 200)} → ${r.statusCode} ${r.body.slice(0, 300)}`);
            if (r.statusCode >= 400) {
              const err = r.json() as { error?: { code?: unknown; message?: unknown } };
              assert.ok(typeof err.error?.code === 'string' && typeof err.error.message === 'string', `uncoded ${r.statusCode}: ${r.body.slice(0, 300)}`);
              // A refusal stores nothing (the lock-out counter counts refusals by design, and the
              // rate limiter's bucket is state that a refused request may still take from).
              if (!url.includes('/lockout/') && !url.includes('/ratelimit/')) assert.equal(store.size(), recordsBefore, `${method} ${url} refused but stored`);
            }
          },
          runs,
          deadline,
        );
      } finally {
        await app.close();
        await provider.close();
      }
    },
  },
  {
    // Requests to /authz/forward whose forwarded headers and credentials are mangled (a valid
    // session, JWT or client key among them now and then), sent over real HTTP to a runtime
    // server with its fast lanes and to one without: an allow only with a valid credential,
    // never a 5xx, always a decision id and a reason, and the lane answers exactly as the
    // route does.
    name: 'forward-auth door headers',
    run: async (runs, deadline) => {
      const KEY = 'fuzz-gateway-key-0123456789';
      const clock = new ManualClock(1_800_000_000_000);
      const { provider } = localGrid(clock);
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
      const CLIENT_KEY = 'fuzz-client-key-0123456789';
      const session = await provider.sessions.create({ subject: 'olga', idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 });
      const token = await new SignJWT({ sub: 'rita' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://issuer.test').setAudience('reports').setExpirationTime(1_900_000_000).sign(privateKey);
      const valid = [session.id, token, CLIENT_KEY];
      const settings = runtimeSettings({
        apis: {
          apis: [
            { id: 'orders', pathPrefix: '/orders', methods: ['GET', 'POST'], denyList: ['ip:203.0.113.0/24'] },
            { id: 'reports', pathPrefix: '/reports', credentials: ['jwt'], jwt: { issuer: 'https://issuer.test', audiences: ['reports'], keys: [jwk], algorithms: ['ES256'] } },
            { id: 'keys', pathPrefix: '/keys', hosts: ['api.test'], credentials: ['apiKey', 'session'] },
          ],
        },
        'api-keys': {
          keys: [
            { id: 'gw', name: 'gw', hash: createHash('sha256').update(KEY).digest('hex'), createdAt: 1, createdBy: 'admin', scope: 'gateway' },
            { id: 'cl', name: 'cl', hash: createHash('sha256').update(CLIENT_KEY).digest('hex'), createdAt: 1, createdBy: 'admin', scope: 'client' },
          ],
        },
      });
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      const servers: Array<ReturnType<typeof createHttpServer>> = [];
      const bases: string[] = [];
      for (const fastLanes of [true, false]) {
        const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'runtime', fastLanes });
        registerRuntimeApi(app, { provider, apiKeyHashes: [], notReadyReasons: () => [], settings: () => settings, clock, decisionLog: 'none', engineId: 'engine-1' });
        await app.listen({ host: '127.0.0.1', port: 0 });
        servers.push(app);
        bases.push(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
      }
      /** One answer, its header lines as sent (the checks are the property's, after it settles). */
      const ask = (base: string, path: string, method: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string>; body: string; repeated: string[] }> =>
        new Promise((resolve, reject) => {
          const req = httpRequest(`${base}${path}`, { method, headers, agent }, (res) => {
            let body = '';
            res.setEncoding('latin1');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => {
              const out: Record<string, string> = {};
              const repeated: string[] = [];
              for (let i = 0; i < res.rawHeaders.length; i += 2) {
                const name = res.rawHeaders[i]!.toLowerCase();
                if (out[name] !== undefined) repeated.push(name);
                out[name] = res.rawHeaders[i + 1]!;
              }
              resolve({ status: res.statusCode ?? 0, headers: out, body, repeated });
            });
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        });
      // Header values a client can send: visible ASCII, spaces and tabs, and bytes above 0x7f.
      const headerText = (max: number) => fc.string({ maxLength: max, unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), fc.constantFrom('\t', 'é', 'ÿ')) });
      const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
      const jwtLike = fc
        .tuple(
          fc.oneof(fc.record({ alg: fc.constantFrom('none', 'HS256', 'ES256', 'RS256', 'ES512', ''), kid: fc.constantFrom('k1', 'k2', '../k1'), typ: fc.constantFrom('JWT', 'at+jwt') }, { requiredKeys: ['alg'] }), fc.jsonValue({ maxDepth: 2 })),
          fc.oneof(fc.record({ iss: fc.constantFrom('https://issuer.test', 'x'), aud: fc.constantFrom('reports', ['reports'], 'other'), sub: headerText(20), exp: fc.oneof(fc.integer(), fc.double(), fc.constant(1_900_000_000)), nbf: fc.integer() }, { requiredKeys: [] }), fc.jsonValue({ maxDepth: 2 })),
          fc.oneof(headerText(90).map(b64), fc.constant('')),
        )
        .map(([h, p, sig]) => `${b64(h)}.${b64(p)}.${sig}`);
      const mangled = fc
        .array(fc.oneof(fc.constantFrom('/orders', '/reports', '/keys', '/', '..', '.', '%2e%2e', '%2E', '%2f', '%5c', '\\', '//', '?', '#', ';', '%00', '%zz', '%', 'é', '*', '@', ':'), headerText(6)), { maxLength: 8 })
        .map((parts) => parts.join(''));
      // Mostly requests that pass the path, method and address checks, so that the credential
      // checks behind them are what the cases reach; a share of mangled ones besides.
      const mostly = <T>(usual: fc.Arbitrary<T>, unusual: fc.Arbitrary<T>) => fc.oneof({ arbitrary: usual, weight: 4 }, { arbitrary: unusual, weight: 1 });
      const uri = mostly(fc.tuple(fc.constantFrom('/orders', '/reports', '/keys'), fc.constantFrom('', '/1', '/a/b?x=1', '/%C3%A9')).map(([a, b]) => a + b), mangled);
      const optional = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ arbitrary: arb, weight: 6 }, { arbitrary: fc.constant(undefined), weight: 1 });
      try {
        return await check(
          fc.record({
            path: fc.constantFrom('/authz/forward', '/authz/forward?statuses=full'),
            method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
            uri: optional(uri),
            originalUri: fc.option(uri, { nil: undefined }),
            forwardedMethod: optional(mostly(fc.constantFrom('GET', 'POST'), fc.oneof(fc.constantFrom('DELETE', 'get', 'G ET', 'CONNECT', ''), headerText(12)))),
            forwardedFor: optional(mostly(fc.constantFrom('192.0.2.1', '2001:db8::1', '192.0.2.1, 198.51.100.2'), fc.oneof(fc.constantFrom('203.0.113.7', '::1', '::ffff:203.0.113.7', '999.1.1.1', 'unknown', ' ', '2001:db8::1%eth0'), headerText(40)))),
            realIp: fc.option(fc.constantFrom('192.0.2.9', 'x', ''), { nil: undefined }),
            forwardedHost: optional(mostly(fc.constantFrom('api.test', 'API.TEST', 'api.test:443'), fc.oneof(fc.constant(''), headerText(20)))),
            cookie: optional(fc.oneof(headerText(60), headerText(40).map((v) => `cohort_session=${v}`), fc.constantFrom('cohort_session=', 'cohort_session="x"; cohort_session=y', 'a=b;;;', `cohort_session=${session.id}`, `a=b; cohort_session=${session.id}`, `cohort_session=${session.id}x`))),
            authorization: optional(fc.oneof(jwtLike.map((t) => `Bearer ${t}`), headerText(60).map((v) => `Bearer ${v}`), headerText(40), fc.constantFrom('Bearer', 'Bearer  ', 'Basic YTpi', `Bearer ${token}`, `bearer ${session.id}`, `Bearer ${token.slice(0, -2)}`))),
            apiKey: optional(fc.oneof(headerText(50), fc.constantFrom(CLIENT_KEY, `${CLIENT_KEY} `, KEY))),
          }),
          async (c) => {
            const headers: Record<string, string> = { 'x-cohort-key': KEY };
            if (c.uri !== undefined) headers['x-forwarded-uri'] = c.uri;
            if (c.originalUri !== undefined) headers['x-original-uri'] = c.originalUri;
            if (c.forwardedMethod !== undefined) headers['x-forwarded-method'] = c.forwardedMethod;
            if (c.forwardedFor !== undefined) headers['x-forwarded-for'] = c.forwardedFor;
            if (c.realIp !== undefined) headers['x-real-ip'] = c.realIp;
            if (c.forwardedHost !== undefined) headers['x-forwarded-host'] = c.forwardedHost;
            if (c.cookie !== undefined) headers.cookie = c.cookie;
            if (c.authorization !== undefined) headers.authorization = c.authorization;
            if (c.apiKey !== undefined) headers['x-api-key'] = c.apiKey;
            const [lane, route] = await Promise.all(bases.map((base) => ask(base, c.path, c.method, headers)));
            const what = `${c.method} ${c.path} ${JSON.stringify(headers)}`;
            const credentialGiven = [c.cookie, c.authorization, c.apiKey].some((v) => v !== undefined && valid.some((k) => v.includes(k)));
            for (const a of [lane!, route!]) {
              assert.deepEqual(a.repeated, [], `headers sent twice: ${what}`);
              assert.match(a.headers['x-cohort-decision-id'] ?? '', /^[A-Za-z0-9_-]{16}$/, what);
              assert.match(a.headers['x-cohort-reason'] ?? '', /^[A-Z][A-Z_]+$/, what);
              if (a.status === 200) {
                assert.ok(credentialGiven, `allowed without a valid credential: ${what}`);
                assert.equal(a.headers['x-cohort-reason'], 'ACCESS_ALLOWED', what);
                assert.equal(a.body, '', what);
                continue;
              }
              assert.ok(a.status >= 400 && a.status < 500, `${what} → ${a.status} ${a.body.slice(0, 200)}`);
              const body = JSON.parse(a.body) as { error: { code: string } };
              assert.equal(body.error.code, a.headers['x-cohort-reason'], what);
            }
            const compared = (a: typeof lane) => ({ ...a, headers: Object.fromEntries(Object.entries(a!.headers).filter(([n]) => !['date', 'connection', 'keep-alive', 'x-cohort-decision-id'].includes(n))) });
            assert.deepEqual(compared(lane), compared(route), `the lane and the route answer alike: ${what}`);
          },
          runs,
          deadline,
        );
      } finally {
        agent.destroy();
        for (const app of servers) await app.close();
        await provider.close();
      }
    },
  },
];
