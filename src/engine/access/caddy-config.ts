/**
 * The Caddyfile site block that puts Cohort's forward-auth door in front of an upstream with
 * Caddy's `forward_auth`: the block docs/behind-a-proxy.md prints and the Caddy end-to-end
 * test runs, from this one template, so the guide's configuration is the one that is tested.
 */
import { DEFAULT_IDENTITY_HEADERS } from './definitions.js';

export interface CaddyForwardAuthOptions {
  /** The site address, as a Caddyfile takes it: `example.com`, `http://127.0.0.1:8080`. */
  site: string;
  /** The protected application, as `reverse_proxy` takes it: `127.0.0.1:3000`. */
  upstream: string;
  /** An engine's runtime address (or a load balancer in front of the engines), as `forward_auth` takes it: `127.0.0.1:7400`. */
  cohort: string;
  /** A console-issued API key of scope `gateway`, sent as `X-Cohort-Key`. */
  gatewayKey: string;
}

/**
 * One site block. `route` keeps the order as written (Caddy otherwise sorts directives, and
 * would run `request_header` after `forward_auth`): first the client's own identity headers
 * are removed, then Cohort is asked, then the request is proxied with the identity Cohort
 * answered with. Caddy before 2.9 sets a `copy_headers` header the answer lacks (the subject,
 * on a public path) to the placeholder's text, `{http.reverse_proxy.header.X-Cohort-Subject}`,
 * instead of leaving it out; the `header_regexp` matchers remove such a header again, so the
 * application never takes that text for a subject, on old Caddy and new alike.
 */
export function caddySiteBlock(o: CaddyForwardAuthOptions): string {
  const identity = Object.keys(DEFAULT_IDENTITY_HEADERS);
  const matcher = (h: string): string => `@unset_${h.toLowerCase().replaceAll('-', '_')}`;
  return `${o.site} {
    route {
        # A client cannot pose as a subject: identity headers it sent itself are dropped.
${identity.map((h) => `        request_header -${h}`).join('\n')}
        # Every request first asks Cohort (never with its body); a 2xx lets it through with
        # the identity headers, any other answer (status, headers, body) goes back to the
        # client as it is.
        forward_auth ${o.cohort} {
            uri /authz/forward
            header_up X-Cohort-Key "${o.gatewayKey}"
            copy_headers ${identity.join(' ')}
        }
        # An identity header the answer did not have (Caddy before 2.9 fills in the
        # placeholder's text instead of leaving it out).
${identity.map((h) => `        ${matcher(h)} header_regexp ${h} ^\\{http\\.reverse_proxy\\.header\\.
        request_header ${matcher(h)} -${h}`).join('\n')}
        reverse_proxy ${o.upstream}
    }
}
`;
}
