/**
 * The TLS side of the HTTP listeners: reading the `[tls]` files, checking that they load, and
 * the options an HTTPS listener is built with. The reloading (a poll on the files, which needs
 * a clock) is in node/tls-reloader.ts.
 */
import { readFileSync, statSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { CohortError, type ErrorCode } from '../core/errors.js';
import type { TlsSettings } from '../config/node-config.js';
import type { TlsListener } from '../config/schema.js';

/** What the listeners' secure context is made of, as read from the files at one moment. */
export interface TlsMaterial {
  /** cert, key, ca (when configured) and the minimum version, ready for a secure context. */
  context: SecureContextOptions;
  /** The leaf certificate's SHA-256 fingerprint and expiry, for log lines. */
  fingerprint: string;
  validTo: string;
}

/**
 * Reads and checks the `[tls]` files: each must be readable PEM, and the key must match the
 * certificate (Node's own secure context is built from them, so a pair that would fail at the
 * first handshake fails here instead). Throws CohortError with `code` naming the file.
 */
export function loadTlsMaterial(settings: TlsSettings, code: ErrorCode = 'NODE_TLS_FILES_INVALID'): TlsMaterial {
  const read = (key: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
      throw new CohortError(code, `[tls] ${key} ${path}: cannot read it: ${reason}`, { key, file: path });
    }
  };
  const cert = read('cert_file', settings.certFile);
  const key = read('key_file', settings.keyFile);
  const ca = settings.caFile === '' ? undefined : read('ca_file', settings.caFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new CohortError(code, `[tls] cert_file ${settings.certFile}: not a PEM certificate (${(err as Error).message})`, { key: 'cert_file', file: settings.certFile });
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new CohortError(code, `[tls] ca_file ${settings.caFile}: not a PEM certificate (${(err as Error).message})`, { key: 'ca_file', file: settings.caFile });
    }
  }
  const context: SecureContextOptions = { cert, key, minVersion: settings.minVersion, ...(ca !== undefined ? { ca } : {}) };
  try {
    createSecureContext(context);
  } catch (err) {
    // "key values mismatch", an encrypted or malformed key: never quote the key itself.
    throw new CohortError(code, `[tls] key_file ${settings.keyFile} does not load with cert_file ${settings.certFile}: ${(err as Error).message}`, {
      key: 'key_file',
      file: settings.keyFile,
    });
  }
  return { context, fingerprint: leaf.fingerprint256, validTo: leaf.validTo };
}

/**
 * The options of the HTTPS listener `listener`, or undefined when it speaks plain HTTP. A
 * listener that requires client certificates asks for one in the handshake and refuses the
 * connection when there is none or it was not issued by `ca_file`.
 */
export function httpsOptionsFor(listener: TlsListener, settings: TlsSettings | undefined, material: TlsMaterial | undefined): ServerOptions | undefined {
  if (settings === undefined || material === undefined || !settings.listeners.includes(listener)) return undefined;
  const requireClient = settings.clientCertificates.includes(listener);
  return { ...material.context, requestCert: requireClient, rejectUnauthorized: requireClient };
}

/**
 * What changes when any of the `[tls]` files is replaced or rewritten: modification time,
 * size and inode of each (a missing file counts as its own state), so a poll can tell that
 * something changed without reading the files.
 */
export function tlsFilesSignature(settings: TlsSettings): string {
  return [settings.certFile, settings.keyFile, settings.caFile]
    .filter((p) => p !== '')
    .map((path) => {
      try {
        const s = statSync(path);
        return `${s.mtimeMs}:${s.size}:${s.ino}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}
