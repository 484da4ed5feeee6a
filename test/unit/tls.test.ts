/**
 * `[tls]`: what the configuration accepts and refuses, what a listener is built with (TLS 1.2
 * minimum, client certificates where asked), what loading refuses, the reload of files
 * replaced on disk (on a manual clock: the poll goes through the injected clock), and how
 * refused handshakes are counted and logged.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { createHttpServer, tlsFailureReason, tlsHandshakeFailures } from '../../src/http/server.js';
import { captureLogger, WARN } from '../helpers/transports.js';
import { waitUntil } from '../helpers/cluster.js';
import { loadNodeConfig, type TlsSettings } from '../../src/config/node-config.js';
import { ManualClock } from '../../src/core/clock.js';
import { isCohortError, type ErrorCode } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/logger.js';
import { httpsOptionsFor, loadTlsMaterial, tlsFilesSignature } from '../../src/http/tls.js';
import { TlsReloader } from '../../src/node/tls-reloader.js';
import { makeLocalCa } from '../../src/cli/local-cluster/local-ca.js';
import { LocalCluster } from '../../src/cli/local-cluster/local-cluster.js';
import { localNodeConfigText } from '../../src/cli/local-cluster/plan.js';
import { configText, TEST_SECRET } from '../helpers/node-config.js';
import { tmpDir } from '../helpers/tmp.js';

function configWithTls(dir: string, tls: Record<string, string>): string {
  const file = join(dir, 'node.ini');
  writeFileSync(file, configText({ node: { id: 'engine-1', role: 'engine' }, cluster: { id: 'c', secret_key: TEST_SECRET }, tls }));
  return file;
}

function refusal(fn: () => unknown): { code: ErrorCode; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(isCohortError(err), String(err));
    return { code: err.code, message: err.message };
  }
  assert.fail('expected a refusal');
}

async function writePair(dir: string, prefix = ''): Promise<TlsSettings> {
  const made = await makeLocalCa();
  writeFileSync(join(dir, `${prefix}ca.pem`), made.caPem);
  writeFileSync(join(dir, `${prefix}node.pem`), made.certPem);
  writeFileSync(join(dir, `${prefix}node-key.pem`), made.keyPem);
  return {
    certFile: join(dir, `${prefix}node.pem`), keyFile: join(dir, `${prefix}node-key.pem`), caFile: join(dir, `${prefix}ca.pem`),
    listeners: ['runtime', 'admin', 'manage', 'proxy'], clientCertificates: ['runtime'], minVersion: 'TLSv1.2', reloadIntervalMs: 1000,
  };
}

describe('[tls] configuration', () => {
  it('is off without a certificate, and on for every listener with one, paths resolved against the file, TLS 1.2 minimum by default', (t) => {
    const dir = tmpDir(t);
    assert.equal(loadNodeConfig(configWithTls(dir, {})).tls, undefined);
    const tls = loadNodeConfig(configWithTls(dir, { cert_file: './tls/node.pem', key_file: 'tls/node-key.pem' })).tls;
    assert.deepEqual(tls, {
      certFile: join(dir, 'tls/node.pem'), keyFile: join(dir, 'tls/node-key.pem'), caFile: '',
      listeners: ['runtime', 'admin', 'manage', 'proxy'], clientCertificates: [], minVersion: 'TLSv1.2', reloadIntervalMs: 2000,
    });
    const some = loadNodeConfig(configWithTls(dir, { cert_file: 'c.pem', key_file: 'k.pem', ca_file: 'ca.pem', listeners: 'runtime, manage', client_certificates: 'runtime', min_version: 'TLSv1.3', reload_interval: '500' })).tls!;
    assert.deepEqual([some.listeners, some.clientCertificates, some.minVersion, some.reloadIntervalMs, some.caFile], [['runtime', 'manage'], ['runtime'], 'TLSv1.3', 500, join(dir, 'ca.pem')]);
  });

  it('refuses a half-configured [tls] before anything starts, naming the key', (t) => {
    const dir = tmpDir(t);
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ cert_file: 'c.pem' }, 'key_file', /set both or neither/],
      [{ key_file: 'k.pem' }, 'cert_file', /set both or neither/],
      [{ cert_file: 'c.pem', key_file: 'k.pem', client_certificates: 'all' }, 'client_certificates', /ca_file, which is empty/],
      [{ cert_file: 'c.pem', key_file: 'k.pem', ca_file: 'ca.pem', listeners: 'runtime', client_certificates: 'manage' }, 'client_certificates', /manage is not in \[tls\] listeners/],
      [{ client_certificates: 'runtime', ca_file: 'ca.pem' }, 'client_certificates', /need TLS/],
      [{ cert_file: 'c.pem', key_file: 'k.pem', listeners: 'runtime, web' }, 'listeners', /web is not an HTTP listener/],
      [{ cert_file: 'c.pem', key_file: 'k.pem', listeners: '' }, 'listeners', /at least one listener/],
      [{ cert_file: 'c.pem', key_file: 'k.pem', min_version: 'TLSv1.1' }, 'min_version', /TLSv1\.2 \| TLSv1\.3/],
      [{ cert_file: 'c.pem', key_file: 'k.pem', reload_interval: '10' }, 'reload_interval', /100 to 3600000/],
    ];
    for (const [tls, key, why] of cases) {
      const r = refusal(() => loadNodeConfig(configWithTls(dir, tls)));
      assert.equal(r.code, 'CONFIG_INVALID_VALUE', r.message);
      assert.match(r.message, new RegExp(`\\[tls\\] ${key}`), r.message);
      assert.match(r.message, why);
    }
  });
});

describe('TLS material', () => {
  it('builds each listener with the certificate, TLS 1.2 minimum, and client certificates required only where configured', async (t) => {
    const settings = await writePair(tmpDir(t));
    const material = loadTlsMaterial(settings);
    const runtime = httpsOptionsFor('runtime', settings, material)!;
    const manage = httpsOptionsFor('manage', settings, material)!;
    assert.equal(runtime.minVersion, 'TLSv1.2');
    assert.deepEqual([runtime.requestCert, runtime.rejectUnauthorized], [true, true]);
    assert.deepEqual([manage.requestCert, manage.rejectUnauthorized], [false, false]);
    assert.equal(httpsOptionsFor('admin', { ...settings, listeners: ['runtime'] }, material), undefined, 'a listener left out speaks plain HTTP');
    assert.equal(httpsOptionsFor('admin', undefined, undefined), undefined);
    assert.match(material.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('refuses a missing file, a file that is not PEM and a key that does not match the certificate, with the file named', async (t) => {
    const dir = tmpDir(t);
    const settings = await writePair(dir);
    const other = await writePair(dir, 'other-');
    const missing = refusal(() => loadTlsMaterial({ ...settings, certFile: join(dir, 'nope.pem') }));
    assert.equal(missing.code, 'NODE_TLS_FILES_INVALID');
    assert.match(missing.message, /cert_file .*nope\.pem: cannot read it: no such file/);
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
    assert.match(refusal(() => loadTlsMaterial({ ...settings, caFile: join(dir, 'junk.pem') })).message, /ca_file .*junk\.pem: not a PEM certificate/);
    const mismatch = refusal(() => loadTlsMaterial({ ...settings, keyFile: other.keyFile }));
    assert.equal(mismatch.code, 'NODE_TLS_FILES_INVALID');
    assert.match(mismatch.message, /key_file .*other-node-key\.pem does not load with cert_file/);
    assert.ok(!mismatch.message.includes('PRIVATE KEY'), 'the key itself is never quoted');
    assert.equal(refusal(() => loadTlsMaterial({ ...settings, keyFile: other.keyFile }, 'NODE_TLS_RELOAD_FAILED')).code, 'NODE_TLS_RELOAD_FAILED');
  });
});

describe('TlsReloader', () => {
  it('puts a replaced certificate into every listener at the next poll, keeps the old one when the new pair does not load, and logs that once', async (t) => {
    const dir = tmpDir(t);
    const settings = await writePair(dir);
    const replacement = await makeLocalCa();
    const signature = tlsFilesSignature(settings);
    const initial = loadTlsMaterial(settings);
    const installed: Array<Array<SecureContextOptions>> = [[], []];
    const servers = installed.map((calls) => ({ setSecureContext: (o: SecureContextOptions) => calls.push(o) }) as unknown as TlsServer);
    const lines: Array<{ level: number; code?: string; msg: string }> = [];
    const log = createLogger({ level: 'info', format: 'json', destination: { write: (line: string) => lines.push(JSON.parse(line)) } as unknown as NodeJS.WritableStream });
    const clock = new ManualClock();
    const reloader = new TlsReloader({ settings, initial, initialSignature: signature, servers: () => servers, clock, log });
    reloader.start();
    t.after(() => reloader.stop());

    clock.advance(5000);
    assert.deepEqual(installed, [[], []], 'nothing changed, nothing reloaded');

    // The key first: until the certificate follows, the pair does not match.
    writeFileSync(settings.keyFile, replacement.keyPem);
    clock.advance(1000);
    assert.deepEqual(installed, [[], []], 'a pair that does not load is not installed');
    const failures = () => lines.filter((l) => l.code === 'NODE_TLS_RELOAD_FAILED');
    assert.equal(failures().length, 1);
    assert.equal(failures()[0]!.level, 50);
    clock.advance(5000);
    assert.equal(failures().length, 1, 'the same bad files are not tried (and logged) again');

    writeFileSync(settings.certFile, replacement.certPem);
    writeFileSync(settings.caFile, replacement.caPem);
    clock.advance(1000);
    assert.equal(installed[0]!.length, 1, 'every listener gets the new pair');
    assert.equal(installed[1]!.length, 1);
    // (read through a function: the deepEqual assertions above narrowed `installed` to empty arrays)
    const first = ((): SecureContextOptions => installed[0]![0]!)();
    assert.equal(String(first.cert), replacement.certPem);
    assert.equal(String(first.ca), replacement.caPem);
    assert.equal(first.minVersion, 'TLSv1.2');
    assert.ok(lines.some((l) => l.msg === 'TLS certificate reloaded'));

    reloader.stop();
    writeFileSync(settings.certFile, (await makeLocalCa()).certPem);
    clock.advance(10_000);
    assert.equal(installed[0]!.length, 1, 'a stopped reloader looks no more');
  });
});

/** Sends `bytes` over plain TCP and waits for the listener to close the connection. */
function rawConnection(port: number, bytes: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port }, () => socket.end(bytes));
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.on('close', () => resolve());
  });
}

/** A TLS client handshake with `options`; resolves when the connection is over, whatever the outcome. */
function tlsAttempt(port: number, options: ConnectionOptions): Promise<void> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...options }, () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.on('close', () => resolve());
  });
}

describe('refused TLS handshakes', () => {
  it('are told apart by reason; a client that only hangs up is no failure', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    const cases: Array<[string, string | undefined, string | undefined]> = [
      ['ERR_SSL_HTTP_REQUEST', undefined, 'not-tls'],
      ['ERR_SSL_WRONG_VERSION_NUMBER', undefined, 'not-tls'],
      ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', undefined, 'no-client-certificate'],
      ['ECONNRESET', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'bad-client-certificate'],
      ['ECONNRESET', undefined, undefined],
      ['ERR_SSL_UNSUPPORTED_PROTOCOL', undefined, 'protocol'],
      ['ERR_SSL_NO_SHARED_CIPHER', undefined, 'protocol'],
      ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', undefined, 'client-alert'],
      ['ERR_TLS_HANDSHAKE_TIMEOUT', undefined, 'timeout'],
      ['ERR_SOMETHING_NEW', undefined, 'other'],
    ];
    for (const [code, authorizationError, reason] of cases) {
      assert.equal(tlsFailureReason(e(code), { authorizationError: authorizationError as unknown as Error }), reason, code);
    }
  });

  it('are counted per listener and logged at most once a minute per source and reason, the rest summed in one line', async (t) => {
    const dir = tmpDir(t);
    const settings = await writePair(dir);
    const ca = readFileSync(settings.caFile, 'utf8');
    const clock = new ManualClock(1_000_000);
    const { logger, lines } = captureLogger();
    const app = createHttpServer({ logger, bodyLimit: 1024, name: 'runtime', tls: httpsOptionsFor('runtime', settings, loadTlsMaterial(settings)), clock });
    app.get('/x', async () => 'ok');
    await app.listen({ host: '127.0.0.1', port: 0 });
    t.after(() => app.close());
    const port = (app.server.address() as AddressInfo).port;
    const stranger = await makeLocalCa();

    for (let i = 0; i < 20; i++) await rawConnection(port, 'GET /x HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 5; i++) await tlsAttempt(port, { ca });
    for (let i = 0; i < 2; i++) await tlsAttempt(port, { ca, cert: stranger.certPem, key: stranger.keyPem });
    // A health check that opens a connection and closes it: not a failure.
    for (let i = 0; i < 3; i++) await rawConnection(port, '');
    // The handshake that works is no failure either.
    await tlsAttempt(port, { ca, cert: readFileSync(settings.certFile), key: readFileSync(settings.keyFile) });
    await waitUntil(async () => tlsHandshakeFailures(app), (n) => n >= 27, 10_000, 10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(tlsHandshakeFailures(app), 27);
    const warned = () => lines.filter((l) => l.code === 'HTTP_TLS_HANDSHAKE_FAILED');
    assert.deepEqual(warned().map((l) => [l.level, l.server, l.source, l.reason]), [
      [WARN, 'runtime', '127.0.0.1', 'not-tls'],
      [WARN, 'runtime', '127.0.0.1', 'no-client-certificate'],
      [WARN, 'runtime', '127.0.0.1', 'bad-client-certificate'],
    ]);

    // A minute later: the next failure is logged again, and what was held back is summed.
    clock.advance(60_000);
    await rawConnection(port, 'GET /x HTTP/1.1\r\n\r\n');
    await rawConnection(port, 'GET /x HTTP/1.1\r\n\r\n');
    await waitUntil(async () => warned().length, (n) => n >= 5, 10_000, 10);
    assert.deepEqual(warned().slice(3).map((l) => [l.reason, l.suppressed]), [['not-tls', undefined], [undefined, 25]]);
    assert.equal(tlsHandshakeFailures(app), 29);
  });
});

describe('cohort up --tls on an existing directory', () => {
  it('writes a [tls] section into new node files and refuses --tls on a directory whose files speak plain HTTP, changing nothing', async (t) => {
    const dir = tmpDir(t);
    const secrets = { clusterId: 'local', secretKey: TEST_SECRET, adminUser: 'admin', apiKey: 'k'.repeat(32) };
    const plan = { id: 'console', role: 'console' as const, configFile: join(dir, 'console.ini'), logFile: join(dir, 'console.log'), cluster: 1, manage: 2, http: 3, mode: 'sideband' as const };
    const withTls = localNodeConfigText({ ...plan, httpsListeners: ['runtime', 'admin', 'manage', 'proxy'] }, undefined, secrets);
    assert.match(withTls, /^\[tls\]\ncert_file = \.\/tls\/node\.pem\nkey_file = \.\/tls\/node-key\.pem\nca_file = \.\/tls\/ca\.pem$/m);
    const plain = localNodeConfigText({ ...plan, httpsListeners: [] }, undefined, secrets);
    assert.doesNotMatch(plain, /\[tls\]/);
    writeFileSync(plan.configFile, plain);
    const r = await new LocalCluster({ dir, engines: 0, tls: true }).start().then(
      () => assert.fail('expected a refusal'),
      (err: unknown) => err as { code: string; message: string },
    );
    assert.equal(r.code, 'CLI_USAGE');
    assert.match(r.message, /speaks plain HTTP/);
    assert.equal(readFileSync(plan.configFile, 'utf8'), plain, 'the file is unchanged');
    assert.equal(existsSync(join(dir, 'tls')), false, 'no CA was made');
  });
});
