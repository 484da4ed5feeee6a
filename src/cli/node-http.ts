/**
 * How the CLI calls a node's HTTP listeners, over plain HTTP or HTTPS alike.
 *
 * Node's built-in fetch cannot be given a CA of its own (that needs an undici Agent, which is
 * not a dependency of this package), so the CLI uses node:http and node:https: with `[tls]
 * ca_file` it trusts that CA besides the system's ones, and to a listener that requires client
 * certificates it presents the node's own certificate and key.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { CohortError } from '../core/errors.js';
import type { NodeConfig } from '../config/node-config.js';
import { isWildcardHost, type TlsListener } from '../config/schema.js';
import { formatAddress } from '../config/values.js';

/** What the CLI needs to speak TLS to one listener. */
export interface ClientTls {
  /** Certificate authorities to trust: the system's plus `[tls] ca_file`; undefined: the system's. */
  ca?: string[];
  /** Presented to a listener that requires a client certificate. */
  cert?: Buffer;
  key?: Buffer;
}

export interface NodeResponse {
  status: number;
  text: string;
}

/**
 * The base URL of a listener of the node of `config` (`https://` when `[tls]` covers it). A
 * listener bound to every interface (0.0.0.0 or ::, as in a container) is called on loopback:
 * the CLI runs on the node's own host, and nothing can be dialled at a wildcard address.
 */
export function listenerUrl(config: NodeConfig, listener: TlsListener): string {
  const address = listener === 'proxy' ? config.http.proxy : config.http[listener];
  if (address === undefined) throw new CohortError('CLI_USAGE', `${config.file}: this node has no ${listener} listener`);
  const host = !isWildcardHost(address.host) ? address.host : address.host === '0.0.0.0' ? '127.0.0.1' : '::1';
  return `${config.tls?.listeners.includes(listener) ? 'https' : 'http'}://${formatAddress({ host, port: address.port })}`;
}

/** The TLS options to call `listener` of the node of `config` with; undefined when it speaks plain HTTP. */
export function clientTlsFor(config: NodeConfig, listener: TlsListener): ClientTls | undefined {
  const tls = config.tls;
  if (!tls?.listeners.includes(listener)) return undefined;
  const read = (key: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CohortError('CLI_TLS_FILES_UNREADABLE', `cannot read [tls] ${key} ${path} of ${config.file} (${(err as Error).message}); run the CLI as the node's user`);
    }
  };
  const client: ClientTls = {};
  if (tls.caFile !== '') client.ca = [...rootCertificates, read('ca_file', tls.caFile).toString('utf8')];
  if (tls.clientCertificates.includes(listener)) {
    client.cert = read('cert_file', tls.certFile);
    client.key = read('key_file', tls.keyFile);
  }
  return client;
}

/** Trust for a URL from a local cluster's cluster.json: the CA file it names. */
export function clientTlsFromCaFile(caFile: string | undefined): ClientTls | undefined {
  if (caFile === undefined) return undefined;
  try {
    return { ca: [...rootCertificates, readFileSync(caFile, 'utf8')] };
  } catch (err) {
    throw new CohortError('CLI_TLS_FILES_UNREADABLE', `cannot read the CA file ${caFile} (${(err as Error).message})`);
  }
}

/**
 * One request to a node: resolves with the status and the body as text, whatever the status;
 * rejects when the node cannot be reached, the TLS handshake fails, or `timeoutMs` passes.
 */
export function nodeRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number; tls?: ClientTls | undefined } = {},
): Promise<NodeResponse> {
  const target = new URL(url);
  const https = target.protocol === 'https:';
  const options = {
    method: init.method ?? 'GET',
    headers: { ...(init.headers ?? {}), ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}) },
    // No shared agent: the CLI makes a handful of calls, and a kept-alive socket would keep it running.
    agent: false as const,
    ...(https && init.tls ? init.tls : {}),
  };
  const timeoutMs = init.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const onResponse = (response: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      response.on('error', reject);
    };
    const req = https ? httpsRequest(target, options, onResponse) : httpRequest(target, options, onResponse);
    // A deadline for the whole exchange, as AbortSignal.timeout gave the fetch this replaces.
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    req.end(init.body);
  });
}
