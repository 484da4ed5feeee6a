import { CohortError } from '../core/errors.js';
import { loadNodeConfig, type NodeConfig } from '../config/node-config.js';
import { formatAddress } from '../config/values.js';
import { readManageCredential } from '../node/data-dir.js';

export interface ManageTarget {
  baseUrl: string;
  credential: string;
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
  return { baseUrl: `http://${formatAddress(config.http.manage)}`, credential };
}

export function manageTargetOfFile(file: string): ManageTarget {
  return manageTargetOf(loadNodeConfig(file));
}

/** Calls the management API; non-2xx answers become a CohortError carrying the node's code. */
export async function manageRequest<T>(target: ManageTarget, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${target.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${target.credential}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new CohortError('CLI_NODE_UNREACHABLE', `cannot reach the node at ${target.baseUrl}: ${(err as Error).message}`);
  }
  const text = await response.text();
  const parsed: unknown = text ? JSON.parse(text) : undefined;
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new CohortError('CLI_REQUEST_FAILED', `node answered ${response.status}: ${error?.message ?? text} ${error?.code ? `(${error.code})` : ''}`.trim(), {
      status: response.status,
      nodeCode: error?.code,
    });
  }
  return parsed as T;
}
