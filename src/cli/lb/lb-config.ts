/**
 * The load-balancer configurations `cohort lb nginx|haproxy` prints: complete files that run
 * in the foreground as they are (`nginx -p DIR -c FILE`, `haproxy -f FILE`), with every file
 * they write (pid, temporary files) relative to DIR or the working directory.
 *
 * What they do for a rolling restart to fail no client request: a stopping engine answers
 * `/health/ready` with 503 and keeps serving for `[http] drain_seconds`, connections kept
 * alive; then it refuses new connections, answers what comes on open ones with `Connection:
 * close`, and waits up to `drain_seconds` again for its clients to close the idle ones
 * (node/cohort-node.ts `closeServingListener`).
 *
 * - HAProxy checks `/health/ready` actively, often enough to take a draining engine out well
 *   within the drain, and retries a request whose connection failed on another engine;
 *   requests that are safe to repeat (not POST or PATCH) are also retried when an engine
 *   died under them.
 * - Open-source nginx has no active checks. An engine that refuses a connection is skipped
 *   for `fail_timeout`, and the request goes to another engine: a refused connection sent
 *   nothing, so nginx retries any method. Until then nginx reaches the draining engine over
 *   connections it already holds, so few new ones are being opened when the listener closes
 *   (one the kernel accepted but the engine had not yet taken is reset under its request).
 *   Requests nginx may repeat (not POST, LOCK, PATCH) are retried on another engine after an
 *   error or a timeout too. Kept-alive connections idle out in nginx well before the engine
 *   would end them itself, so none is cut under a request.
 *
 * Pure functions: the command (lb.ts) gathers the engines, a unit test checks the text, and
 * a real-process test runs both balancers with it.
 */
import { nginxServerBlock } from '../../engine/access/nginx-config.js';

export interface LbEngine {
  id: string;
  /** Runtime API address, `host:port`. */
  address: string;
}

export interface LbOptions {
  clusterId: string;
  engines: readonly LbEngine[];
  /** Where the balancer listens, `host:port`. */
  listen: string;
  /** The engines' `[http] drain_seconds`, in ms: the timings below fit inside it. */
  drainMs: number;
}

/** Health-check interval (ms): two failed checks in a row must fit well inside the drain. */
export function checkIntervalMs(drainMs: number): number {
  return Math.min(2000, Math.max(100, Math.floor(drainMs / 5)));
}

/**
 * How long a kept-alive connection to an engine may stay idle in the balancer (ms): shorter
 * than the time a stopping engine waits for its clients to close their connections
 * (`drain_seconds` after its listener closed), so that every connection either carries a
 * request (answered with `Connection: close`) or is closed by the balancer, never by the
 * engine while the balancer may be writing into it. Never 0, which would turn keep-alive off.
 */
export function idleKeepAliveMs(drainMs: number): number {
  return Math.max(100, Math.floor(drainMs / 2));
}

function header(kind: string, o: LbOptions, run: string): string[] {
  return [
    `# ${kind} in front of the ${o.engines.length} engine(s) of Cohort cluster "${o.clusterId}", written by "cohort lb".`,
    `# Run it in the foreground: ${run}`,
    `# Engines: ${o.engines.map((e) => `${e.id} ${e.address}`).join(', ')}.`,
    `# Timings fit engines that drain for ${o.drainMs / 1000} s ([http] drain_seconds); write the file again after adding engines.`,
  ];
}

/** nginx: passive checks, retries on another engine, keep-alive, and the auth_request door commented out. */
export function nginxLbConfig(o: LbOptions): string {
  const tries = Math.max(2, Math.min(o.engines.length, 5));
  const authExample = nginxServerBlock({ listen: '127.0.0.1:8081', upstream: 'http://127.0.0.1:3000', cohort: 'http://cohort_engines', gatewayKey: 'GATEWAY_API_KEY' })
    .trimEnd()
    .split('\n')
    .map((line) => `    # ${line}`.trimEnd());
  return [
    ...header('nginx', o, 'nginx -p DIR -c FILE (pid and temporary files under DIR; the error log goes to standard error)'),
    'daemon off;',
    'worker_processes auto;',
    'pid nginx.pid;',
    'error_log stderr notice;',
    '',
    'events {',
    '    worker_connections 4096;',
    '}',
    '',
    'http {',
    '    access_log off;',
    '    client_body_temp_path client_body_temp;',
    '    proxy_temp_path proxy_temp;',
    '    fastcgi_temp_path fastcgi_temp;',
    '    uwsgi_temp_path uwsgi_temp;',
    '    scgi_temp_path scgi_temp;',
    '',
    '    upstream cohort_engines {',
    '        # Passive health checks: an engine that refuses a connection or times out is',
    '        # skipped for fail_timeout (open-source nginx has no active checks; a draining',
    '        # engine keeps serving until it refuses connections, so nothing is lost meanwhile).',
    ...o.engines.map((e) => `        server ${e.address} max_fails=1 fail_timeout=2s; # ${e.id}`),
    '        # Keep-alive to the engines; nginx closes idle ones before a stopping engine would.',
    '        keepalive 64;',
    `        keepalive_timeout ${idleKeepAliveMs(o.drainMs)}ms;`,
    '        keepalive_requests 10000;',
    '    }',
    '',
    '    server {',
    `        listen ${o.listen};`,
    '',
    '        location / {',
    '            proxy_pass http://cohort_engines;',
    '            proxy_http_version 1.1;',
    '            proxy_set_header Connection "";',
    '            proxy_set_header Host $host;',
    '            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '            proxy_set_header X-Forwarded-Proto $scheme;',
    '            proxy_connect_timeout 1s;',
    '            proxy_read_timeout 30s;',
    '            # Another engine after a failed connection (any method: nothing was sent) or, for',
    '            # requests nginx may repeat (not POST, LOCK, PATCH), after an error or a timeout.',
    '            # A 503 from an engine is an answer (state unavailable), not retried.',
    '            proxy_next_upstream error timeout http_502 http_504;',
    `            proxy_next_upstream_tries ${tries};`,
    '            proxy_next_upstream_timeout 10s;',
    '        }',
    '    }',
    '',
    '    # Access decisions in front of an application (auth_request asks the engines above;',
    '    # GATEWAY_API_KEY is a console-issued key of scope gateway). Uncomment to enable.',
    ...authExample,
    '}',
    '',
  ].join('\n');
}

/** HAProxy: active checks on /health/ready, retries on another engine, keep-alive. */
export function haproxyLbConfig(o: LbOptions): string {
  const inter = checkIntervalMs(o.drainMs);
  return [
    ...header('HAProxy', o, 'haproxy -f FILE (no pid file, nothing written to disk)'),
    'global',
    '    maxconn 4096',
    '',
    'defaults',
    '    mode http',
    '    timeout connect 1s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    timeout http-keep-alive 10s',
    '    timeout check 1s',
    '    option http-keep-alive',
    '    # A failed request goes to another engine (redispatch), at most 3 more times.',
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure empty-response response-timeout',
    '',
    'frontend cohort',
    `    bind ${o.listen}`,
    '    default_backend cohort_engines',
    '',
    'backend cohort_engines',
    '    balance roundrobin',
    '    # Active checks: a draining or starting engine answers 503 and is taken out.',
    '    option httpchk GET /health/ready',
    '    http-check expect status 200',
    '    # Only requests that are safe to repeat are retried after they reached an engine;',
    '    # the others only when the connection failed (nothing was sent).',
    '    acl cohort_repeatable method GET HEAD PUT DELETE OPTIONS',
    '    http-request disable-l7-retry unless cohort_repeatable',
    '    http-reuse safe',
    `    default-server check inter ${inter} fastinter ${inter} downinter ${inter} fall 2 rise 2`,
    ...o.engines.map((e) => `    server ${e.id} ${e.address}`),
    '',
  ].join('\n');
}
