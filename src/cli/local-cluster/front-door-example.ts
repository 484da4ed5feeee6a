/**
 * The example request `cohort up` prints once the cluster is up: a `curl` through the front
 * door of the cluster it just started, which a newcomer can paste as it is. Sideband: a
 * forward-auth question to the first engine's `/authz/forward`, as nginx or Caddy would ask it
 * (the cluster's API key in `X-Cohort-Key`, the original request in `X-Forwarded-*`). Inline:
 * a request through the first engine's proxy port. `cohort up` makes the same request itself
 * and prints what it answered, so the printed answer is the one the command gets.
 */
import type { ClusterFile } from './local-cluster.js';

export interface FrontDoorExample {
  url: string;
  /** Request headers, in the order the command lists them. */
  headers: Array<[string, string]>;
  /** The shell command: `curl -i URL -H 'Name: value' ...`. */
  command: string;
}

export interface FrontDoorAnswer {
  status: number;
  /** `X-Cohort-Reason` of the answer, when it has one. */
  reason: string | undefined;
}

/** The path the example asks about: under `/app`, the prefix the guides' first API protects. */
export const EXAMPLE_PATH = '/app/hello';

/** Single-quoted for a POSIX shell (every value here is plain ASCII; a quote is escaped anyway). */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** The example for the cluster of `file`; undefined when it has no engine (`--engines 0`). */
export function frontDoorExample(file: ClusterFile): FrontDoorExample | undefined {
  const engine = file.nodes.find((n) => n.role === 'engine');
  if (engine === undefined) return undefined;
  let url: string;
  let headers: Array<[string, string]>;
  if (engine.proxy !== undefined) {
    url = `${engine.proxy}${EXAMPLE_PATH}`;
    headers = [];
  } else {
    url = `${engine.runtime}/authz/forward`;
    headers = [
      ['X-Cohort-Key', file.apiKey],
      ['X-Forwarded-Method', 'GET'],
      ['X-Forwarded-Uri', EXAMPLE_PATH],
      ['X-Forwarded-For', '192.0.2.10'],
    ];
  }
  const command = ['curl -i', shellQuote(url), ...headers.map(([name, value]) => `-H ${shellQuote(`${name}: ${value}`)}`)].join(' ');
  return { url, headers, command };
}

/** Makes the example's request; undefined when nothing answered within `timeoutMs`. */
export async function askFrontDoor(example: FrontDoorExample, timeoutMs = 3000): Promise<FrontDoorAnswer | undefined> {
  try {
    const r = await fetch(example.url, { headers: Object.fromEntries(example.headers), signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return { status: r.status, reason: r.headers.get('x-cohort-reason') ?? undefined };
  } catch {
    return undefined;
  }
}

/** The lines `cohort up` prints: the command, then what it answered just now and what to do next. */
export function frontDoorLines(example: FrontDoorExample, answer: FrontDoorAnswer | undefined): string[] {
  const said = answer === undefined
    ? 'no answer just now (see the engine\'s log)'
    : `answers ${answer.status}${answer.reason ? ` ${answer.reason}` : ''}`;
  const next = answer?.reason === 'ACCESS_NO_API'
    ? ': no API protects /app yet; save one on the console (PUT /admin/v1/config/apis, see docs/behind-a-proxy.md)'
    : '';
  return [`  front door  ${example.command}`, `              ${said}${next}`];
}
