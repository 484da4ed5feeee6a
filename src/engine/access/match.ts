/** Which API a request is for: the longest path prefix among those whose hosts fit; then its methods. */
import type { CompiledApi } from './definitions.js';
import { underPrefix } from './request-path.js';

/** The host without its port, lower case (`[::1]:8080` gives `[::1]`). */
function hostName(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

function hostFits(api: CompiledApi, host: string | undefined): boolean {
  if (api.hosts.length === 0) return true;
  if (host === undefined) return false;
  const full = host.toLowerCase();
  const name = hostName(host);
  return api.hosts.some((h) => h === full || h === name);
}

export type MatchResult = { api: CompiledApi; methodAllowed: boolean } | undefined;

export function matchApi(apis: readonly CompiledApi[], method: string, path: string, host: string | undefined): MatchResult {
  let best: CompiledApi | undefined;
  for (const api of apis) {
    if (!underPrefix(path, api.pathPrefix) || !hostFits(api, host)) continue;
    // Equal prefixes: one naming hosts is more specific than one for any host.
    if (!best || api.pathPrefix.length > best.pathPrefix.length || (api.pathPrefix.length === best.pathPrefix.length && best.hosts.length === 0 && api.hosts.length > 0)) best = api;
  }
  if (!best) return undefined;
  return { api: best, methodAllowed: best.methods.length === 0 || best.methods.includes(method.toUpperCase()) };
}

export function isPublicPath(api: CompiledApi, path: string): boolean {
  return api.publicPaths.some((p) => underPrefix(path, p));
}
