/**
 * The path of a request to decide on, checked before it is matched. Proxies and upstreams
 * normalise paths in different ways; a path they could read differently from Cohort (dot
 * segments, empty segments, encoded slashes or backslashes, control characters, broken
 * percent-encoding) is refused rather than guessed at, so no prefix can be escaped.
 */

/** Paths of these characters only need no decoding and hold no control character or backslash. */
const PLAIN_PATH = /^[A-Za-z0-9/._~!$&'()*+,;=:@-]*$/;
/** A `.` or `..` segment, or an empty segment before another one. */
const DOT_OR_EMPTY_SEGMENT = /\/\.{1,2}(?=\/|$)|\/\//;

/** The decoded path of `url` (path and query), or undefined when it cannot be judged safely. */
export function checkedPath(url: string): string | undefined {
  if (url.length === 0 || url.length > 8192 || url[0] !== '/') return undefined;
  const q = url.search(/[?#]/);
  const raw = q < 0 ? url : url.slice(0, q);
  // The common case, answered without decoding: the same verdict as the segment walk below.
  if (PLAIN_PATH.test(raw)) return DOT_OR_EMPTY_SEGMENT.test(raw) ? undefined : raw;
  if (/%(2f|5c|00)/i.test(raw)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(decoded)) return undefined;
  const segments = decoded.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s === '.' || s === '..') return undefined;
    // An empty segment is allowed only as the trailing slash.
    if (s === '' && i !== segments.length - 1) return undefined;
  }
  return decoded;
}

/** Whether `path` is under `prefix`: equal, or continuing with a new segment (`/api` covers `/api/x`, not `/apix`). */
export function underPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path[prefix.length] === '/';
}
