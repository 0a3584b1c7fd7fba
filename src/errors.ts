// The one error catalogue: every failure berth reports has a stable code, an HTTP status and a title here.
// Callers match on `code`, never on classes or message text; the `detail` sentence tells the user what to do.

export const catalogue = {
  // request and auth
  UNAUTHORIZED: [401, 'Missing or invalid token'],
  AUTH_RATE_LIMITED: [429, 'Too many failed authentication attempts'],
  FORBIDDEN_SCOPE: [403, 'Token lacks the required scope'],
  FORBIDDEN_APP: [403, 'Token is not allowed to act on this app'],
  VALIDATION_FAILED: [400, 'The request is not valid'],
  ROUTE_NOT_FOUND: [404, 'No such route'],
  METHOD_NOT_ALLOWED: [405, 'Method not allowed'],
  UNSUPPORTED_MEDIA_TYPE: [415, 'Unsupported content type'],
  INVALID_APP_NAME: [400, 'Invalid app name'],
  APP_NOT_FOUND: [404, 'No such app'],
  RELEASE_NOT_FOUND: [404, 'No such release'],
  RELEASE_AMBIGUOUS_VERSION: [409, 'The version names more than one release'],
  RELEASE_IS_CURRENT: [409, 'The release is in use'],
  SHUTTING_DOWN: [503, 'berth is shutting down'],
  DEPLOYMENT_NOT_FOUND: [404, 'No such deployment'],
  DEPLOYMENT_IN_PROGRESS: [409, 'Another deployment or operation of this app is in progress'],
  NO_ROLLBACK_TARGET: [409, 'There is no release to roll back to'],
  ROLLBACK_TO_CURRENT: [409, 'That release is already current'],
  NOT_DEPLOYED: [409, 'The app has no current release'],
  ALREADY_RUNNING: [409, 'The app is already running'],
  NODE_NOT_RUNNING: [409, 'The node is not running'],
  TOO_MANY_SESSIONS: [429, 'Too many console sessions for this app'],
  CONSOLE_BUSY: [409, 'The node console is in use outside berth'],
  ORIGIN_NOT_ALLOWED: [403, 'The page origin may not open consoles'],
  SESSION_NOT_FOUND: [404, 'No such console session'],
  WEBHOOK_NOT_FOUND: [404, 'No such webhook'],
  WEBHOOK_TARGET_PRIVATE: [400, 'The webhook target is not a public address'],
  TOO_MANY_WEBHOOKS: [409, 'The app has as many webhooks as allowed'],
  RECORDING_GONE: [410, 'The recording was removed by retention'],
  DEPLOYMENT_FAILED: [422, 'The deployment failed'],
  DEPLOYMENT_ROLLED_BACK: [422, 'The deployment was rolled back'],
  TOO_MANY_UPLOADS: [503, 'Too many uploads in progress'],
  TOO_MANY_UPLOADS_FOR_APP: [429, 'Too many uploads in progress for this app'],
  TOO_MANY_UPLOADS_FOR_TOKEN: [429, 'Too many uploads in progress with this token'],
  TOO_MANY_STREAMS: [429, 'Too many open streams'],
  HEADERS_TOO_LARGE: [431, 'The request headers are too large'],
  INVALID_RELEASE_ID: [400, 'Invalid release id'],
  TARGET_IS_BERTH: [400, "The URL points at berth's own listener"],
  ENV_TOO_LARGE: [413, 'The environment is larger than a process can be started with'],

  // deployment steps and the node (a deployment records these as its reason; clients see them in it)
  MIGRATION_FAILED: [422, 'The migration failed'],
  MIGRATION_TIMEOUT: [422, 'The migration timed out'],
  MIGRATION_REQUIRED: [422, 'No migration would run, and the app requires one'],
  ROLLBACK_EXPR_MISSING: [409, 'No rollback expression is configured'],
  ROLLBACK_EXPR_FAILED: [422, 'The rollback expression failed'],
  NODE_EXITED: [422, 'The node exited while it was being verified'],
  BOOT_TIMEOUT: [422, 'The node did not finish booting within the boot timeout'],
  HEALTH_CHECK_FAILED: [422, 'The health check did not answer 2xx'],
  NODE_STOP_FAILED: [500, 'The node did not stop'],
  COMMAND_UNSUPPORTED: [409, 'This kind of release has no command for that'],
  DIST_PORTS_EXHAUSTED: [503, 'No distribution port of BERTH_DIST_PORTS is free'],
  INSTANCE_PORTS_EXHAUSTED: [503, 'No instance port of BERTH_INSTANCE_PORTS is free'],
  ABORTED: [503, 'The work was aborted because berth is shutting down'],

  // the proxy (zero-downtime deploys): haproxy in front of the app's instances
  PROXY_SETTING_INVALID: [400, 'The proxy setting is not valid'],
  PROXY_LISTEN_IN_USE: [409, 'The listen address belongs to another listener on this host'],
  HOST_TAKEN: [409, 'The hostname belongs to another app on this host'],
  PROXY_START_FAILED: [500, 'The proxy did not start'],
  PROXY_UNREACHABLE: [500, 'The proxy did not answer on its runtime socket'],
  PROXY_COMMAND_FAILED: [500, 'The proxy refused a runtime command'],

  // the shared edge (issue 25): hostnames, certificates, ACME
  EDGE_NOT_CONFIGURED: [409, 'This host runs no edge (BERTH_EDGE_HTTP is not set)'],
  EDGE_START_FAILED: [500, 'The edge did not start'],
  EDGE_RELOAD_FAILED: [500, 'The edge refused its new configuration'],
  APP_NOT_ON_EDGE: [409, 'The app has no hostnames on the edge'],
  CERT_INVALID: [422, 'The certificate or its key cannot be read'],
  CERT_KEY_MISMATCH: [422, 'The key does not belong to the certificate'],
  CERT_EXPIRED: [422, 'The certificate is expired or not yet valid'],
  CERT_HOST_MISMATCH: [422, 'The certificate does not cover the hostname'],
  CERT_CHAIN_INVALID: [422, 'The bundle holds certificates outside the chain of its leaf'],
  HOST_NOT_ROUTED: [409, "The hostname is not one of the app's proxy.hosts"],
  TLS_MODE_MISMATCH: [409, "The app's proxy.tls does not take this kind of certificate"],
  CERT_NOT_FOUND: [404, 'The hostname has no certificate of that kind'],

  // upload transport
  UPLOAD_EMPTY: [400, 'The upload is empty'],
  UPLOAD_TOO_LARGE: [413, 'The upload is larger than allowed'],
  UPLOAD_INCOMPLETE: [400, 'The upload ended early'],
  UPLOAD_TIMEOUT: [408, 'The upload was too slow'],
  UPLOAD_TOO_SLOW: [408, 'The upload arrives slower than the minimum rate'],
  MULTIPART_NO_FILE: [400, 'The multipart body has no release file'],
  MULTIPART_TRUNCATED: [413, 'The multipart file was truncated'],
  DIGEST_INVALID: [400, 'The checksum parameter or header is malformed'],
  DIGEST_UNSUPPORTED: [400, 'The checksum algorithm is not supported'],
  CHECKSUM_MISMATCH: [422, 'The upload does not match its checksum'],

  // archive format
  NOT_A_TARBALL: [415, 'The upload is not a tar.gz or tar archive'],
  GZIP_CORRUPT: [422, 'The gzip stream is corrupt'],
  GZIP_TRUNCATED: [422, 'The gzip stream ends early'],
  GZIP_RATIO_EXCEEDED: [413, 'The archive expands too much'],
  TARBALL_TRAILING_DATA: [422, 'The upload has data after the archive'],
  TARBALL_NESTED_COMPRESSION: [422, 'The archive is compressed twice'],
  TAR_INVALID: [422, 'The tar archive is malformed'],
  TAR_TRUNCATED: [422, 'The tar archive ends early'],

  // archive entries
  TAR_UNSAFE_PATH: [422, 'A tar entry has an unsafe path'],
  TAR_PATH_TOO_DEEP: [422, 'A tar entry is nested too deeply'],
  TAR_PATH_TOO_LONG: [422, 'A tar entry name is too long'],
  TAR_LINK_ESCAPE: [422, 'A tar link points outside the release'],
  TAR_PATH_THROUGH_LINK: [422, 'A tar entry is written through a link'],
  TAR_FORBIDDEN_TYPE: [422, 'A tar entry has a forbidden type'],
  TAR_DUPLICATE_ENTRY: [422, 'A tar entry appears twice'],
  TAR_TOO_MANY_FILES: [413, 'The archive has too many entries'],
  TAR_TOO_LARGE: [413, 'The archive unpacks to more than allowed'],

  // release content
  RELEASE_INVALID: [422, 'The archive is not an Erlang/Elixir release'],
  RELEASE_NAME_MISMATCH: [422, 'The release is for another app'],
  RELEASE_MULTIPLE_APPS: [422, 'The archive holds more than one release'],

  // fleet rollouts (the CLI's conductor, src/fleet): what it refuses before touching any host
  FLEET_FILE_INVALID: [400, 'The fleet file is not valid'],
  FLEET_TOKEN_MISSING: [400, 'A host of the fleet has no token'],

  // server side
  DATABASE_UNREADABLE: [500, 'berth.db is not a readable database'],
  DATA_DIR_EXPOSED: [500, 'The data directory is readable by other users'],
  ISOLATION_UNAVAILABLE: [500, 'Apps cannot run as their own users here'],
  APP_UIDS_EXHAUSTED: [503, 'No uid of BERTH_APP_UIDS is free'],
  ENV_KEY_UNAVAILABLE: [500, 'The key that encrypts app environments cannot be read'],
  ENV_KEY_INSECURE: [500, 'The key that encrypts app environments is exposed to other users'],
  ENV_KEY_MISSING: [500, 'The environment was encrypted with a key berth does not have'],
  ENV_TAMPERED: [500, 'The stored environment does not authenticate'],
  SETTINGS_NOT_COPIED: [500, 'The settings are saved, but their copy on disk is not'],
  INSUFFICIENT_STORAGE: [507, 'Not enough disk space'],
  INTERNAL: [500, 'Internal error'],
  MODULE_LOAD_FAILED: [500, 'berth could not load part of its own code'],
  API_DOCUMENT_INVALID: [500, 'openapi.yaml does not describe the routes correctly'],
} as const satisfies Record<string, readonly [number, string]>

export type ErrorCode = keyof typeof catalogue

export class BerthError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly title: string
  /** Extra members for the problem body (e.g. `entry`, `limit`); never secrets or internals. */
  readonly extra: Record<string, unknown>

  constructor(code: ErrorCode, detail: string, extra: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(detail, options)
    this.name = 'BerthError'
    this.code = code
    this.status = catalogue[code][0]
    this.title = catalogue[code][1]
    this.extra = extra
  }
}

/** A deployment step that failed with output worth keeping (the eval's console, the health answers). */
export class StepFailed extends BerthError {
  readonly output: string

  constructor(code: ErrorCode, detail: string, output: string, extra: Record<string, unknown> = {}) {
    super(code, detail, extra)
    this.name = 'StepFailed'
    this.output = output
  }
}

export function problem(code: ErrorCode, detail: string, extra?: Record<string, unknown>, cause?: unknown): BerthError {
  return new BerthError(code, detail, extra, cause === undefined ? undefined : { cause })
}

export function isBerthError(err: unknown): err is BerthError {
  return err instanceof BerthError
}

/** Maps filesystem errors that a client can do nothing about but wait for into problems; others pass through. */
export function fromFsError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') {
    return problem('INSUFFICIENT_STORAGE', 'The data directory is full; free space on the host (or delete old releases) and upload again.')
  }
  return err
}
