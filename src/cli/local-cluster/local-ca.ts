/**
 * `cohort up --tls`: a throwaway certificate authority for a local cluster, and one
 * certificate from it that every node of the cluster serves (they all listen on loopback).
 *
 * The CA's private key is never written anywhere: it signs the node certificate and is
 * dropped, so nothing can issue another certificate that clients of this cluster would trust.
 * What stays in DIR/tls: `ca.pem` (what clients trust; cluster.json names it), `node.pem` and
 * `node-key.pem` (0600). ECDSA P-256 keys, made with Node's WebCrypto through @peculiar/x509.
 */
import { webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

export interface LocalCaFiles {
  /** DIR/tls/ca.pem */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The certificates last this long; a second `cohort up` in the directory makes new ones when they are near their end. */
const VALIDITY_DAYS = 90;
const RENEW_WITHIN_DAYS = 7;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** The files of DIR/tls, made (or made again, when missing or near expiry) as needed. */
export async function ensureLocalCa(dir: string, now = new Date()): Promise<LocalCaFiles> {
  const tlsDir = join(dir, 'tls');
  const files: LocalCaFiles = { caFile: join(tlsDir, 'ca.pem'), certFile: join(tlsDir, 'node.pem'), keyFile: join(tlsDir, 'node-key.pem') };
  if (stillGood(files, now)) return files;
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  const made = await makeLocalCa(now);
  // The key first, the certificate that names it last: a node reloading mid-way sees a
  // mismatch, keeps its old pair, and loads the new one once the certificate is in place.
  writeFileSync(files.caFile, made.caPem, { mode: 0o644 });
  writeFileSync(files.keyFile, made.keyPem, { mode: 0o600 });
  writeFileSync(files.certFile, made.certPem, { mode: 0o644 });
  return files;
}

function stillGood(files: LocalCaFiles, now: Date): boolean {
  if (!existsSync(files.caFile) || !existsSync(files.certFile) || !existsSync(files.keyFile)) return false;
  try {
    const cert = new NodeX509Certificate(readFileSync(files.certFile));
    return new Date(cert.validTo).getTime() - now.getTime() > RENEW_WITHIN_DAYS * DAY_MS;
  } catch {
    return false;
  }
}

/** A new CA and a certificate from it for 127.0.0.1, ::1 and localhost, good for server and client authentication. */
export async function makeLocalCa(now = new Date()): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const crypto = webcrypto;
  // The library's types name the DOM's Crypto; Node's WebCrypto is that same interface.
  x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  // A little in the past: a clock a few minutes behind must not find the certificate not yet valid.
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + VALIDITY_DAYS * DAY_MS);
  const caKeys = (await crypto.subtle.generateKey(ALGORITHM, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=Cohort local CA ${now.toISOString().slice(0, 10)}, O=Cohort cohort up`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const nodeKeys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: 'CN=localhost, O=Cohort cohort up',
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: nodeKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      // Client authentication too: the CLI presents this certificate to a manage listener that requires one.
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      await x509.SubjectKeyIdentifierExtension.create(nodeKeys.publicKey),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', nodeKeys.privateKey);
  return { caPem: `${ca.toString('pem')}\n`, certPem: `${cert.toString('pem')}\n`, keyPem: `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n` };
}

/** A positive 16-byte serial number, in hex (a leading byte under 0x80 keeps it positive in DER). */
function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
