/**
 * Every failure Cohort reports has a stable code from this table.
 *
 * Codes are grouped by subsystem prefix, never renamed or reused (scripts match on them), and
 * each is documented in docs/errors.md; a unit test checks the table and the document agree
 * in both directions. `status` is the HTTP status used where the error reaches an API.
 */
export const ERROR_CODES = {
  // config/: node configuration file and environment overrides
  CONFIG_FILE_UNREADABLE: { status: 500, summary: 'The node configuration file is missing or cannot be read.' },
  CONFIG_SYNTAX: { status: 500, summary: 'A line of the configuration file is neither a [section], a key = value pair, a comment nor blank.' },
  CONFIG_UNKNOWN_SECTION: { status: 500, summary: 'The configuration file has a section Cohort does not know.' },
  CONFIG_UNKNOWN_KEY: { status: 500, summary: 'The configuration file has a key Cohort does not know in a known section.' },
  CONFIG_MISSING_KEY: { status: 500, summary: 'A required key has no value in the file or the environment.' },
  CONFIG_INVALID_VALUE: { status: 500, summary: 'A key has a value outside what is allowed (the message says what is allowed).' },
  CONFIG_BAD_OBFUSCATION: { status: 500, summary: 'A value starting with OBF: does not decode.' },

  // repository/: configuration store and audit
  REPO_URL_INVALID: { status: 500, summary: 'The repository URL is neither sqlite:PATH nor postgres://.' },
  REPO_UNAVAILABLE: { status: 503, summary: 'The repository cannot be reached or opened.' },
  REPO_SCHEMA_TOO_NEW: { status: 500, summary: 'The repository was migrated by a newer Cohort than this one.' },
  REPO_VERSION_CONFLICT: { status: 409, summary: 'A configuration save expected a version that is no longer the latest.' },
  REPO_EPOCH_STALE: { status: 409, summary: 'A configuration save carried an epoch lower than the repository\'s.' },
  REPO_NOT_FOUND: { status: 404, summary: 'The requested configuration document or version does not exist.' },

  // transport/: node-to-node connections
  TRANSPORT_PEER_UNREACHABLE: { status: 503, summary: 'A connection to a peer could not be opened or was lost (details.reason: refused, closed, timeout, error).' },
  TRANSPORT_REFUSED_CLUSTER_ID: { status: 403, summary: 'The peer refused the handshake: it belongs to a cluster with another id.' },
  TRANSPORT_REFUSED_SECRET: { status: 403, summary: 'The peer refused the handshake: this node could not prove the cluster secret (or the peer could not).' },
  TRANSPORT_REFUSED_PROTOCOL: { status: 403, summary: 'The peer refused the handshake: no wire-protocol version in common.' },

  // cluster/: membership, joining and cluster operations
  CLUSTER_JOIN_MODE_MISMATCH: { status: 409, summary: 'Join refused: the node\'s [node] mode (inline or sideband) differs from the cluster\'s.' },
  CLUSTER_JOIN_VERSION_MISMATCH: { status: 409, summary: 'Join refused: the node\'s major or minor version differs from the cluster\'s (maintenance versions may differ).' },
  CLUSTER_JOIN_DUPLICATE_NODE_ID: { status: 409, summary: 'Join refused: an active member already holds this node id.' },
  CLUSTER_JOIN_NO_PEER: { status: 503, summary: 'None of the configured peers could be reached to join through.' },
  CLUSTER_META_TOO_LARGE: { status: 413, summary: 'Join refused: the metadata the node announces is larger than 4 KiB as JSON (a node also refuses to announce such metadata).' },
  CLUSTER_NODE_ACTIVE: { status: 409, summary: 'delete-node refused: the node is active (stop it first).' },
  CLUSTER_NODE_UNKNOWN: { status: 404, summary: 'No member has that cluster address.' },

  // rpc/: request/response between nodes
  RPC_TIMEOUT: { status: 504, summary: 'A request to another node got no answer within rpc_timeout.' },
  RPC_PEER_UNREACHABLE: { status: 503, summary: 'The connection to the node a request was sent to could not be opened or was lost before the answer came.' },
  RPC_NO_HANDLER: { status: 501, summary: 'The node asked does not serve that request (an older or newer version, or the wrong role).' },
  RPC_REMOTE_FAILED: { status: 502, summary: 'The node asked failed while handling the request (its log says why).' },
  RPC_QUORUM_FAILED: { status: 503, summary: 'Too few of the nodes asked answered for the majority (or all) the operation needs.' },
  RPC_CLOSED: { status: 503, summary: 'The request was abandoned because this node is stopping.' },
  RPC_BAD_REQUEST: { status: 400, summary: 'The node asked refused the request: its body does not fit the method\'s schema in the protocol table (a bug or a foreign sender; the message names the field).' },
  RPC_UNKNOWN_METHOD: { status: 500, summary: 'A method that is not in its subsystem\'s protocol table was called or served (a programming error).' },

  // state/: runtime state services
  STATE_NOT_FOUND: { status: 404, summary: 'No live record by that id or key: never created, expired, revoked, or already resolved.' },
  STATE_REPLAY_DETECTED: { status: 409, summary: 'The replay-prevention id was seen before (the message is a replay).' },
  STATE_RATE_LIMITED: { status: 429, summary: 'The rate-limit bucket of that policy and key is empty; retry later.' },
  STATE_UNAVAILABLE: { status: 503, summary: 'The state the request needs cannot be reached right now (too few replicas, or the Redis provider is down); the request may be retried. A change the engine could not make on every replica was undone; but when the engine gave up waiting for the engine that runs the request, or a revocation (also the one a session delete makes) reached no majority (it is kept and sent on), the change may still take effect.' },
  STATE_NOT_REPLICATED: { status: 503, summary: 'A revocation (also the one a session delete makes) or a replay id reached the Redis master, but fewer of its replicas than [state] redis_wait_replicas acknowledged it within redis_wait_timeout, so a failover of that master could lose it: it was not acknowledged. The call may be retried (a replay id already stored then counts as seen, which refuses the message: fail closed).' },
  STATE_PLACEMENT_CHANGING: { status: 503, summary: 'The engines are switching to a new placement of the state after a membership change and disagree for a moment on which engine holds the key (or no other replica answered because one just failed and is not declared yet); the engine retries for about a second before answering this, and nothing was changed.' },
  STATE_VALUE_TOO_LARGE: { status: 413, summary: 'A session\'s attributes, an artifact, an inter-request state value or a token-cache entry is larger, as serialized JSON, than its cap ([state] max_session_attributes_bytes, max_artifact_bytes, max_state_value_bytes, max_token_bytes); nothing was stored.' },
  GRID_STATE_DAMAGED: { status: 500, summary: 'The grid state saved at the last stop failed its checksum or is cut short; it was not loaded (kept as grid-state.tsv.damaged) and the engine takes its state from the cluster.' },

  // engine/: the runtime API
  RUNTIME_INVALID_ID: { status: 400, summary: 'An id, key, subject or policy name is not 1 to 256 printable ASCII characters without spaces (policy names: letters, digits, _ . -, at most 64), or its URL encoding is not valid UTF-8; nothing was stored.' },

  // engine/access/: access decisions; each is also the X-Cohort-Reason of a decision, and its status the deny status
  ACCESS_ALLOWED: { status: 200, summary: 'The request may pass (in monitor mode also when a deny was found: X-Cohort-Would-Deny names it).' },
  ACCESS_NO_API: { status: 403, summary: 'The request matches no API definition (path prefix, host) and the runtime section does not set unmatchedRequests to allow.' },
  ACCESS_METHOD_NOT_ALLOWED: { status: 405, summary: 'The request\'s path and host match an API whose methods do not include its method.' },
  ACCESS_BAD_REQUEST: { status: 400, summary: 'The request to decide on cannot be judged safely: a path with a dot segment, an empty segment, an encoded slash or backslash, a control character or a bad percent-encoding, or a missing or malformed method, URI, host or address; it is denied.' },
  ACCESS_DENIED_ADDRESS: { status: 403, summary: 'The client address is on the API\'s deny list (ip: entries, addresses and CIDR ranges, IPv4 and IPv6).' },
  ACCESS_NO_CREDENTIAL: { status: 401, summary: 'The request carries none of the credentials the API accepts (session cookie or bearer, X-Api-Key, bearer JWT).' },
  ACCESS_INVALID_CREDENTIAL: { status: 401, summary: 'The credential is not valid: an unknown or non-client API key, or a JWT with a bad signature, issuer, audience, algorithm or time, an unknown key id, or one too large.' },
  ACCESS_SESSION_UNKNOWN: { status: 401, summary: 'The session id names no live session (never created, expired or logged out).' },
  ACCESS_REVOKED: { status: 401, summary: 'The session id, or the JWT\'s jti or sid, is revoked.' },
  ACCESS_TOKEN_REPLAYED: { status: 401, summary: 'The API accepts each JWT once (singleUseTokens) and this one\'s jti was seen before, or it has no jti or exp.' },
  ACCESS_DENIED_SUBJECT: { status: 403, summary: 'The subject, API key id or session id is on the API\'s deny list.' },
  ACCESS_LOCKED: { status: 403, summary: 'The client address or subject is locked out after too many failed credential checks (retryAfterSeconds says for how long).' },
  ACCESS_RATE_LIMITED: { status: 429, summary: 'The API\'s rate-limit bucket for this address, subject or key is empty (Retry-After says when to try again).' },
  ACCESS_UNAVAILABLE: { status: 503, summary: 'The state the decision needs (no majority of a replica set) or the API\'s remote JWT key set cannot be reached, or the API\'s definition cannot be used: denied (fail closed), unless the API sets onStateUnavailable to allow.' },
  PROXY_NO_UPSTREAM: { status: 502, summary: 'The inline proxy allowed a request whose API has no upstream (or that matched no API): there is nowhere to forward it.' },
  PROXY_UPSTREAM_TIMEOUT: { status: 504, summary: 'The inline proxy\'s upstream did not answer within the API\'s timeoutMs.' },
  PROXY_UPSTREAM_FAILED: { status: 502, summary: 'The inline proxy could not reach the API\'s upstream (connection refused or reset, name not found) or got no valid answer from it.' },
  LOGIN_STATE_INVALID: { status: 400, summary: 'A sign-in callback whose state is unknown, expired, already used, or not the one this browser started (its sign-in cookie): refused, no session created.' },
  LOGIN_DENIED_BY_PROVIDER: { status: 403, summary: 'The OpenID provider answered the sign-in with an error (the user declined, or the provider refused the client): no session created.' },
  LOGIN_CODE_REFUSED: { status: 400, summary: 'The OpenID provider refused to exchange the sign-in callback\'s code (used, expired, or not issued for this client and PKCE verifier): no session created.' },
  LOGIN_ID_TOKEN_INVALID: { status: 401, summary: 'The ID token of a sign-in failed a check (signature, issuer, audience, nonce, times): no session created.' },
  LOGIN_PROVIDER_UNAVAILABLE: { status: 502, summary: 'The OpenID provider of an API with login could not be reached or gave no valid answer (discovery, keys or token endpoint).' },
  LOGOUT_TOKEN_INVALID: { status: 400, summary: 'A back-channel logout token failed verification (signature, issuer, audience = a configured client, the back-channel logout event, no nonce, sub or sid, jti, iat recent) or names no API with login: nothing revoked.' },
  LOGOUT_TOKEN_REPLAYED: { status: 400, summary: 'A back-channel logout token whose jti was seen before: nothing revoked again.' },
  UPSTREAM_TOKEN_FAILED: { status: 502, summary: 'Token mediation: the API\'s upstreamToken endpoint refused or could not be reached, or the signed-in user has no token to exchange; the request was not forwarded.' },

  // node/ and the management API
  NODE_DATA_DIR_UNUSABLE: { status: 500, summary: 'The data directory cannot be created, read or written.' },
  NODE_BIND_FAILED: { status: 500, summary: 'An HTTP or cluster address could not be bound (in use, or not local).' },
  NODE_TLS_FILES_INVALID: { status: 500, summary: 'At start: a [tls] certificate, key or CA file cannot be read or does not load (not PEM, a key that does not match the certificate); the node binds nothing.' },
  NODE_TLS_RELOAD_FAILED: { status: 500, summary: 'A changed [tls] certificate, key or CA file does not load; the HTTPS listeners keep the previous set until the files change again.' },
  NODE_AUTHORITY_INVALID: { status: 500, summary: 'DATA_DIR/console-authority.key (the console authority) holds no Ed25519 private key: copy it again from the console\'s data directory.' },
  NODE_SECRETS_KEY_INVALID: { status: 500, summary: 'DATA_DIR/secrets.key (the keys of the secrets stored sealed in the repository) cannot be read or holds something else than keys: restore it from the console\'s data directory.' },
  AUTH_MISSING_CREDENTIAL: { status: 401, summary: 'The request carries no Authorization: Bearer credential.' },
  AUTH_INVALID_CREDENTIAL: { status: 401, summary: 'The request\'s credential is not valid for this node.' },
  AUTH_NO_API_KEYS: { status: 401, summary: 'The engine has no API key configured ([http] api_keys), so the runtime API accepts no request.' },
  AUTH_FORBIDDEN: { status: 403, summary: 'The credential is valid but its role or scope may not do this (an auditor is read-only; a read-scoped API key only reads single records).' },
  AUTH_CSRF_FAILED: { status: 403, summary: 'A request signed in by the web console\'s session cookie that may change something lacks the X-Cohort-CSRF header given at sign-in (or carries a wrong one); nothing was done.' },
  AUTH_LOCKED_OUT: { status: 429, summary: 'Too many wrong passwords for this user from this address (or from several addresses, for those it never signed in from): sign-ins are refused without a password check until the lock-out ends (details.retryAfterSeconds, Retry-After).' },
  AUTH_LOGIN_THROTTLED: { status: 429, summary: 'Sign-in refused before the password was checked: this address used its budget of sign-ins, or too many are being checked at once (details.retryAfterSeconds, Retry-After).' },
  CONSOLE_SECTION_UNKNOWN: { status: 404, summary: 'No configuration section by that name (sections: runtime, services, apis, api-keys, schedules).' },
  CONSOLE_DOCUMENT_INVALID: { status: 400, summary: 'The configuration document does not match its section\'s schema (details.errors says where); nothing was saved.' },
  CONSOLE_WEB_NOT_BUILT: { status: 503, summary: 'The web console\'s files were not built (dist/web/index.html is missing): run npm run build. The admin API works without them.' },
  CONSOLE_SECTION_MANAGED: { status: 409, summary: 'The section is written through its own API (api-keys, schedules), not by PUT on the section.' },
  CONSOLE_NOT_ACTIVE: { status: 409, summary: 'This node is a replica (or was demoted): configuration is changed on the console.' },
  CONSOLE_ROLE_UNPROVEN: { status: 403, summary: 'A request only the console or a replica it admitted may make (audit records, users, tokens, documents, the console role) came without the console authority\'s proof: holding the cluster secret is not enough. A replica is admitted by copying DATA_DIR/console-authority.key from the console.' },
  CONSOLE_PROMOTE_REFUSED: { status: 409, summary: 'Promotion refused: the console still answers (use --force), or this node is not a replica.' },
  CONSOLE_UNREACHABLE: { status: 503, summary: 'No console answers over the cluster channel.' },
  SCHEDULE_INVALID: { status: 400, summary: 'The schedule does not validate: bad cron expression or time zone, unknown job type, missing URL or directory (details.errors lists each problem); nothing was saved.' },
  SCHEDULE_NOT_FOUND: { status: 404, summary: 'No schedule by that id.' },
  ADMIN_NOT_FOUND: { status: 404, summary: 'The named object (an API key) does not exist.' },

  // secrets at rest: the credentials in stored configuration documents (core/sealed-secrets.ts)
  SECRET_TAMPERED: { status: 500, summary: 'A secret stored sealed in the repository (a schedule\'s HTTP header, an API\'s client secret) does not open: its envelope is malformed, or its authentication tag does not match (altered, or moved from another place); it is not used. Save the secret again.' },
  SECRET_KEY_UNKNOWN: { status: 500, summary: 'A secret stored sealed in the repository was sealed with a key this node does not hold (DATA_DIR/secrets.key), or the node holds none: copy the key file from the console, or save the secret again.' },

  // engine/: the engine's copy of the cluster configuration
  ENGINE_CONFIG_CACHE_INVALID: { status: 500, summary: 'The configuration the engine saved at its last run (applied-config.json) failed its decryption or integrity code, a section\'s content digest or schema, or is cut short: it was not used, it is kept as applied-config.json.damaged, and the engine stays not ready until the console sends a fresh copy.' },
  ENGINE_CONFIG_UNPROVEN: { status: 502, summary: 'A node claiming the console role answered with a configuration not signed by the console authority the engine follows (pinned in DATA_DIR/console-authority.pub or set by [cluster] console_public_key): it was ignored, and the next console candidate asked.' },
  ENGINE_CONFIG_REFUSED: { status: 502, summary: 'A configuration the engine received from the console failed a section\'s content digest or schema: the engine kept the configuration it had and reports the failure to the console (replication failed).' },

  // HTTP layer, shared by every API
  HTTP_BAD_REQUEST: { status: 400, summary: 'The request body or parameters do not match the route\'s schema.' },
  HTTP_NOT_FOUND: { status: 404, summary: 'No route matches the method and path.' },
  HTTP_BODY_TOO_LARGE: { status: 413, summary: 'The request body is larger than the route allows.' },
  HTTP_URI_TOO_LONG: { status: 414, summary: 'A path segment of the URL is longer than any id or key the API accepts.' },
  HTTP_HEADERS_TOO_LARGE: { status: 431, summary: 'The request line and headers together exceed the server\'s header size limit.' },
  HTTP_REQUEST_TIMEOUT: { status: 408, summary: 'The client did not send a complete request in time.' },
  HTTP_UNSUPPORTED_MEDIA_TYPE: { status: 415, summary: 'The request body is not application/json.' },
  HTTP_INTERNAL: { status: 500, summary: 'An unexpected failure; the node log has the details.' },
  HTTP_REFUSALS_NOT_LOGGED: { status: 400, summary: 'In the log: refused requests of an HTTP listener that were not logged one by one (at most one line per source address and code every 10 seconds); the line gives how many.' },
  HTTP_TLS_HANDSHAKE_FAILED: { status: 400, summary: 'In the log: a client failed the TLS handshake with an HTTPS listener (plain HTTP to it, no client certificate or one the CA did not issue where client certificates are required, no TLS version or cipher in common, or the client refused this node\'s certificate). The connection is closed; each failure is counted (cohort_tls_handshake_failures_total) and logged at most once a minute per source address and reason.' },

  // cli/
  CLI_NODE_UNREACHABLE: { status: 503, summary: 'The CLI could not reach the node\'s management API.' },
  CLI_CREDENTIAL_UNREADABLE: { status: 500, summary: 'The CLI could not read the management credential in the node\'s data directory.' },
  CLI_TLS_FILES_UNREADABLE: { status: 500, summary: 'The CLI could not read the [tls] CA file it trusts for the node (or the certificate and key it presents to a manage listener that requires one).' },
  CLI_USAGE: { status: 400, summary: 'A command was called with arguments it does not accept.' },
  CLI_REQUEST_FAILED: { status: 502, summary: 'The node answered the CLI\'s request with an error; the message carries the node\'s own code.' },
  CLI_LOCAL_CLUSTER_FAILED: { status: 500, summary: 'cohort up could not start a node of the local cluster (its log file is named).' },
  CLI_LOCAL_CLUSTER_RUNNING: { status: 409, summary: 'cohort up found the local cluster of its directory already running (the running nodes are named); nothing was started or written.' },
  CLI_STOP_TIMEOUT: { status: 504, summary: 'cohort cluster stop: some nodes were still running when the stop timeout passed (they are named).' },
  CLI_NO_ENGINES: { status: 409, summary: 'cohort lb: the cluster lists no engine with its runtime address, so there is nothing to balance; start the engines first.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class CohortError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CohortError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  /** The JSON body every API uses for errors. */
  toBody(): { error: { code: ErrorCode; message: string; errors?: string[] } } {
    // A list of every problem (a document refused by its schema) goes with the answer, so a
    // form can show each one at its field; other details stay in the log.
    const errors = this.details?.errors;
    const list = Array.isArray(errors) && errors.every((e) => typeof e === 'string') ? { errors: errors as string[] } : {};
    return { error: { code: this.code, message: this.message, ...list } };
  }
}

export function isCohortError(err: unknown, code?: ErrorCode): err is CohortError {
  return err instanceof CohortError && (code === undefined || err.code === code);
}
