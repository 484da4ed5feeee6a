/**
 * HTTPS listeners on a real node process (`cohort start` with `[tls]`): plain HTTP is refused
 * on a TLS listener, a client that does not trust the CA is refused, an mTLS listener refuses
 * a client without a certificate (or with one from another CA) and accepts one from its CA,
 * the CLI works over HTTPS, every refused handshake is counted in the metrics and logged with
 * its reason, and certificate files replaced on disk are served without a restart (a bad
 * intermediate pair is logged and the old one kept).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, rootCertificates, type ConnectionOptions } from 'node:tls';
import { nodeRequest as requestOnce, type ClientTls } from '../../src/cli/node-http.js';
import { makeLocalCa } from '../../src/cli/local-cluster/local-ca.js';
import { silentLogger } from '../../src/core/logger.js';
import { createHttpServer } from '../../src/http/server.js';
import { readManageCredential } from '../../src/node/data-dir.js';
import { httpsOptionsFor, loadTlsMaterial } from '../../src/http/tls.js';
import { waitUntil } from '../helpers/cluster.js';
import { validConfig, writeConfig } from '../helpers/node-config.js';
import { runCohort, runCohortToEnd } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';
import { refused } from '../helpers/refused.js';

/** The SHA-256 fingerprint of the certificate a TLS listener presents to a new connection. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

/** Whether a TLS handshake with `options` succeeds (false: refused, whatever the reason). */
function handshake(options: ConnectionOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', ...options }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * One request on a fresh connection, tried a second time if the connection was reset before any
 * answer: on a machine busy with other tests a handshake has once ended so (printed when it
 * happens). A refusal that the test expects is refused both times.
 */
async function nodeRequest(...args: Parameters<typeof requestOnce>): ReturnType<typeof requestOnce> {
  try {
    return await requestOnce(...args);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') throw err;
    console.log(`${args[0]}: connection reset before an answer (${(err as Error).message}); trying once more`);
    return requestOnce(...args);
  }
}

describe('HTTPS listeners', () => {
  it('serves HTTPS on every listener of a real node, refuses plain HTTP and untrusted clients, requires client certificates where configured, and reloads replaced files without a restart', async (t) => {
    const dir = tmpDir(t);
    const first = await makeLocalCa();
    const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'node.pem'), key: join(dir, 'node-key.pem') };
    writeFileSync(files.ca, first.caPem);
    writeFileSync(files.cert, first.certPem);
    writeFileSync(files.key, first.keyPem, { mode: 0o600 });
    const sections = await validConfig('engine-1', 'engine', {
      http: { api_keys: 'a-runtime-api-key-for-tls-tests' },
      tls: { cert_file: './node.pem', key_file: './node-key.pem', ca_file: './ca.pem', client_certificates: 'runtime', reload_interval: '200' },
    });
    const configFile = writeConfig(dir, 'engine-1.ini', sections);
    const managePort = Number(sections.http!.manage!.split(':')[1]);
    const runtimePort = Number(sections.http!.runtime!.split(':')[1]);
    const node = runCohort(t, ['start', '-c', configFile]);
    await node.waitForOutput(/engine engine-1 started/, 30_000);
    const manage = `https://127.0.0.1:${managePort}`;
    const runtime = `https://127.0.0.1:${runtimePort}`;
    const trusting = (ca: string): ClientTls => ({ ca: [...rootCertificates, ca] });

    // The CLI reads [tls] ca_file from the node's configuration and trusts it.
    const info = await runCohortToEnd(t, ['cluster', 'info', '-c', configFile, '--json']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout) as { nodes: Array<{ id: string }> }).nodes[0]!.id, 'engine-1');

    // Plain HTTP to a TLS listener gets no HTTP answer at all.
    const plain = await refused(nodeRequest(`http://127.0.0.1:${managePort}/health/live`, { timeoutMs: 5000 }));
    console.log(`plain HTTP to the HTTPS manage listener: ${plain}`);
    await refused(nodeRequest(`http://127.0.0.1:${runtimePort}/health/live`, { timeoutMs: 5000 }));
    // A client that trusts only the system's CAs refuses the node's certificate.
    assert.match(await refused(nodeRequest(`${manage}/manage/v1/node`, { timeoutMs: 5000 })), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);

    // mTLS on the runtime listener: no certificate, or one from another CA, is refused in the handshake.
    const stranger = await makeLocalCa();
    await refused(nodeRequest(`${runtime}/health/live`, { tls: trusting(first.caPem), timeoutMs: 5000 }));
    await refused(nodeRequest(`${runtime}/health/live`, { tls: { ...trusting(first.caPem), cert: Buffer.from(stranger.certPem), key: Buffer.from(stranger.keyPem) }, timeoutMs: 5000 }));
    const withCert = { ...trusting(first.caPem), cert: Buffer.from(first.certPem), key: Buffer.from(first.keyPem) };
    assert.equal((await nodeRequest(`${runtime}/health/live`, { tls: withCert })).status, 200);
    const session = await nodeRequest(`${runtime}/runtime/v1/sessions`, {
      method: 'POST',
      headers: { authorization: 'Bearer a-runtime-api-key-for-tls-tests', 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'alice' }),
      tls: withCert,
    });
    assert.ok([201, 503].includes(session.status), `the runtime API answers over mTLS: ${session.status} ${session.text}`);
    // Every refused handshake is counted per listener and logged (at a bounded rate) with its reason.
    const metrics = (await nodeRequest(`${manage}/metrics`, { tls: trusting(first.caPem) })).text;
    const failures = (server: string): number => Number(new RegExp(`^cohort_tls_handshake_failures_total\\{[^}]*server="${server}"[^}]*\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? -1);
    assert.ok(failures('runtime') >= 3, `runtime: plain HTTP, no client certificate, another CA's: ${failures('runtime')}\n${metrics.split('\n').filter((l) => l.includes('tls_handshake')).join('\n')}`);
    // (A client that does not trust the node's certificate hangs up: not counted.)
    assert.ok(failures('manage') >= 1, `manage: plain HTTP: ${failures('manage')}`);
    for (const reason of ['not-tls', 'no-client-certificate', 'bad-client-certificate']) {
      await node.waitForOutput(new RegExp(`"code":"HTTP_TLS_HANDSHAKE_FAILED","server":"runtime","source":"127\\.0\\.0\\.1","reason":"${reason}"`), 5000);
    }

    // The manage listener does not ask for a client certificate.
    const unauthenticated = await nodeRequest(`${manage}/manage/v1/node`, { tls: trusting(first.caPem) });
    assert.equal(unauthenticated.status, 401, 'the handshake passes without a client certificate; the API answers (asking for its credential)');

    // Reload: a new key alone does not match the served certificate; it is logged and the old pair kept.
    const before = await servedFingerprint(managePort);
    const second = await makeLocalCa();
    writeFileSync(files.key, second.keyPem);
    await node.waitForOutput(/NODE_TLS_RELOAD_FAILED/, 15_000);
    assert.equal(await servedFingerprint(managePort), before, 'the old certificate is still served');
    assert.equal((await nodeRequest(`${manage}/manage/v1/node`, { tls: trusting(first.caPem), headers: { authorization: `Bearer ${readManageCredential(join(dir, 'engine-1'))}` } })).status, 200);

    // The certificate and CA follow: new connections get them, the process is the same.
    const startedAt = performance.now();
    writeFileSync(files.cert, second.certPem);
    writeFileSync(files.ca, second.caPem);
    const after = await waitUntil(() => servedFingerprint(managePort), (f) => f !== before, 15_000, 50);
    console.log(`replaced certificate served after ${Math.round(performance.now() - startedAt)} ms (reload_interval 200 ms)`);
    assert.equal(node.child.exitCode, null, 'no restart');
    assert.equal((await nodeRequest(`${runtime}/health/live`, { tls: { ...trusting(second.caPem), cert: Buffer.from(second.certPem), key: Buffer.from(second.keyPem) } })).status, 200);
    await refused(nodeRequest(`${runtime}/health/live`, { tls: { ...trusting(second.caPem), cert: Buffer.from(first.certPem), key: Buffer.from(first.keyPem) }, timeoutMs: 5000 }));
    assert.match(await refused(nodeRequest(`${manage}/manage/v1/node`, { tls: trusting(first.caPem), timeoutMs: 5000 })), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/, 'the old CA no longer vouches for it');
    assert.notEqual(after.value, before);
    const again = await runCohortToEnd(t, ['cluster', 'info', '-c', configFile, '--json']);
    assert.equal(again.code, 0, `the CLI trusts the new ca_file: ${again.stderr}`);
  });

  it('refuses to start, binding nothing, when the key does not match the certificate', async (t) => {
    const dir = tmpDir(t);
    const [a, b] = [await makeLocalCa(), await makeLocalCa()];
    writeFileSync(join(dir, 'node.pem'), a.certPem);
    writeFileSync(join(dir, 'node-key.pem'), b.keyPem);
    const sections = await validConfig('engine-1', 'engine', { tls: { cert_file: './node.pem', key_file: './node-key.pem' } });
    const run = await runCohortToEnd(t, ['start', '-c', writeConfig(dir, 'engine-1.ini', sections)]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /NODE_TLS_FILES_INVALID/);
    assert.match(run.stdout + run.stderr, /key_file .*node-key\.pem does not load with cert_file/);
    assert.doesNotMatch(run.stdout, /Server listening|started/, 'no listener was bound');
  });

  it('accepts TLS 1.2 by default and refuses older, and with min_version = TLSv1.3 refuses TLS 1.2', async (t) => {
    const dir = tmpDir(t);
    const made = await makeLocalCa();
    writeFileSync(join(dir, 'c.pem'), made.certPem);
    writeFileSync(join(dir, 'k.pem'), made.keyPem);
    const settings = { certFile: join(dir, 'c.pem'), keyFile: join(dir, 'k.pem'), caFile: '', listeners: ['runtime' as const], clientCertificates: [], minVersion: 'TLSv1.2' as const, reloadIntervalMs: 1000 };
    const listen = async (minVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<number> => {
      const s = { ...settings, minVersion };
      const app = createHttpServer({ logger: silentLogger(), bodyLimit: 4096, name: 'runtime', tls: httpsOptionsFor('runtime', s, loadTlsMaterial(s)) });
      t.after(() => app.close());
      await app.listen({ host: '127.0.0.1', port: 0 });
      return (app.server.address() as AddressInfo).port;
    };
    const v12 = await listen('TLSv1.2');
    const v13 = await listen('TLSv1.3');
    const ca = [made.caPem];
    assert.equal(await handshake({ port: v12, ca, maxVersion: 'TLSv1.2' }), true);
    assert.equal(await handshake({ port: v12, ca, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), false, 'TLS 1.1 refused');
    assert.equal(await handshake({ port: v13, ca, maxVersion: 'TLSv1.2' }), false, 'TLS 1.2 refused when the minimum is 1.3');
    assert.equal(await handshake({ port: v13, ca }), true);
  });
});
