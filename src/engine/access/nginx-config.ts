/**
 * The nginx configuration that puts Cohort's forward-auth door in front of an upstream: the
 * `server` block that docs/behind-a-proxy.md prints and the nginx end-to-end test runs, from
 * this one template, so the guide's configuration is the one that is tested.
 */

export interface NginxForwardAuthOptions {
  /** What nginx listens on, as nginx's `listen` takes it: `80`, `127.0.0.1:8080`. */
  listen: string;
  /** The protected application, as `proxy_pass` takes it: `http://127.0.0.1:3000`. */
  upstream: string;
  /** An engine's runtime URL (or a load balancer in front of the engines): `http://127.0.0.1:7400`. */
  cohort: string;
  /** A console-issued API key of scope `gateway`, sent as `X-Cohort-Key`. */
  gatewayKey: string;
}

/** One `server` block for nginx's `http` context (needs the auth_request module, in nginx's standard builds). */
export function nginxServerBlock(o: NginxForwardAuthOptions): string {
  return `server {
    listen ${o.listen};

    # Every request first asks Cohort; 2xx lets it through, 401 and 403 are answered as such.
    location / {
        auth_request /_cohort_authz;
        # The identity Cohort answered with, handed to the application (a client-supplied
        # header of the same name is replaced, never passed on).
        auth_request_set $cohort_subject $upstream_http_x_cohort_subject;
        auth_request_set $cohort_api $upstream_http_x_cohort_api;
        auth_request_set $cohort_decision $upstream_http_x_cohort_decision_id;
        auth_request_set $cohort_reason $upstream_http_x_cohort_reason;
        auth_request_set $cohort_would_deny $upstream_http_x_cohort_would_deny;
        proxy_set_header X-Cohort-Subject $cohort_subject;
        proxy_set_header X-Cohort-Api $cohort_api;
        proxy_set_header X-Cohort-Decision-Id $cohort_decision;
        # Monitor mode (enforce false): what the request would have been denied for.
        proxy_set_header X-Cohort-Would-Deny $cohort_would_deny;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Host $host;
        # Why a request was refused reaches the client too (nginx passes WWW-Authenticate
        # on a 401 by itself).
        add_header X-Cohort-Reason $cohort_reason always;
        add_header X-Cohort-Decision-Id $cohort_decision always;
        add_header X-Cohort-Would-Deny $cohort_would_deny always;
        proxy_pass ${o.upstream};
    }

    location = /_cohort_authz {
        internal;
        proxy_pass ${o.cohort}/authz/forward;
        # The decision needs the client's headers (passed as sent), never its body.
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Cohort-Key "${o.gatewayKey}";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        # The client's address must be the last entry: $proxy_add_x_forwarded_for appends it.
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
`;
}
