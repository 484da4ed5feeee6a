/**
 * Set-Cookie values of web sign-in. Every cookie is HttpOnly (no script reads it) and
 * SameSite=Lax (sent on a top-level navigation back from the provider, not on cross-site
 * subrequests), and Secure when the browser reached the engine over TLS.
 */
export interface CookieOptions {
  path: string;
  secure: boolean;
  /** Seconds; undefined: a browser-session cookie; 0: delete it. */
  maxAgeSeconds?: number;
}

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const VALUE = /^[A-Za-z0-9_.~-]{0,1024}$/;
const PATH = /^\/[A-Za-z0-9_.~\-/%]*$/;

export function setCookie(name: string, value: string, o: CookieOptions): string {
  // Names, values and paths come from the configuration and from ids this engine made, but a
  // header injection must be impossible whatever they hold.
  if (!NAME.test(name) || !VALUE.test(value) || !PATH.test(o.path)) throw new Error(`cookie ${name} cannot be set safely`);
  const parts = [`${name}=${value}`, `Path=${o.path}`, 'HttpOnly', 'SameSite=Lax'];
  if (o.maxAgeSeconds !== undefined) parts.push(`Max-Age=${o.maxAgeSeconds}`);
  if (o.secure) parts.push('Secure');
  return parts.join('; ');
}

export function clearCookie(name: string, o: Omit<CookieOptions, 'maxAgeSeconds'>): string {
  return setCookie(name, '', { ...o, maxAgeSeconds: 0 });
}
