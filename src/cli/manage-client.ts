import { CohortError } from '../core/errors.js';
import { loadNodeConfig, type NodeConfig } from '../config/node-config.js';
import { readManageCredential } from '../node/data-dir.js';
import { clientTlsFor, listenerUrl, nodeRequest, type ClientTls } from './node-http.js';

export interface ManageTarget {
  baseUrl: string;
  credential: string;
  /** With `[tls]` on the manage listener: the CA to trust (and the certificate to present). */
  tls?: ClientTls | undefined;
}

/** Where a node's management API is and the credential to use, from its configuration. */
export function manageTargetOf(config: NodeConfig): ManageTarget {
  let credential: string;
  try {
    credential = readManageCredential(config.node.dataDir);
  } catch (err) {
    throw new CohortError(
      'CLI_CREDENTIAL_UNREADABLE',
      `cannot read the management credential in ${config.node.dataDir} (${(err as Error).message}); run the CLI as the node's user, after the node's first start`,
    );
  }
  return { baseUrl: listenerUrl(config, 'manage'), credential, tls: clientTlsFor(config, 'manage') };
}

export function manageTargetOfFile(file: string): ManageTarget {
  return manageTargetOf(loadNodeConfig(file));
}

/** Calls the management API; non-2xx answers become a CohortError carrying the node's code. */
export async function manageRequest<T>(target: ManageTarget, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  let response: { status: number; text: string };
  try {
    response = await nodeRequest(`${target.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${target.credential}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      timeoutMs,
      tls: target.tls,
    });
  } catch (err) {
    throw new CohortError('CLI_NODE_UNREACHABLE', `cannot reach the node at ${target.baseUrl}: ${(err as Error).message}`);
  }
  const { text } = response;
  const parsed: unknown = text ? JSON.parse(text) : undefined;
  if (response.status < 200 || response.status >= 300) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new CohortError('CLI_REQUEST_FAILED', `node answered ${response.status}: ${error?.message ?? text} ${error?.code ? `(${error.code})` : ''}`.trim(), {
      status: response.status,
      nodeCode: error?.code,
    });
  }
  return parsed as T;
}
