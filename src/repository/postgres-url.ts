/**
 * Parsing of `postgres://` repository URLs. The password must never reach a message: errors
 * name the host and database only, and driver messages are scrubbed before they are wrapped.
 */
import { CohortError } from '../core/errors.js';

export interface PostgresTarget {
  /** The URL handed to pg, without Cohort's own `schema` parameter. */
  connectionString: string;
  /**
   * From `?schema=`, lower-cased as PostgreSQL folds unquoted names, so `?schema=Cohort` and an
   * operator's `SET search_path = Cohort` mean the same schema; undefined means the server's
   * default search_path. Always double-quoted where interpolated (it may be a keyword).
   */
  schema: string | undefined;
  /** `host:port/database`, for messages. */
  where: string;
  /** Strings to scrub from driver messages: the password as written and decoded. */
  secrets: string[];
}

/**
 * Letters, digits and underscores, not starting with a digit, at most 63 bytes (PostgreSQL's
 * identifier limit): such a name is safe inside double quotes without escaping.
 */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function parsePostgresUrl(url: string): PostgresTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The text is not echoed: it may hold a password.
    throw new CohortError('REPO_URL_INVALID', 'Repository URL is not a valid postgres:// URL');
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new CohortError(
      'REPO_URL_INVALID',
      `Repository URL schema "${schema}" must be letters, digits and underscores, not starting with a digit, at most 63 characters`,
      { schema },
    );
  }
  parsed.searchParams.delete('schema');
  const database = decode(parsed.pathname.replace(/^\//, ''));
  return {
    connectionString: parsed.toString(),
    schema: schema?.toLowerCase(),
    where: `${parsed.hostname}:${parsed.port || '5432'}/${database}`,
    secrets: [parsed.password, decode(parsed.password)].filter((s) => s !== ''),
  };
}

/** `text` with every secret replaced by `***`. */
export function scrub(text: string, secrets: readonly string[]): string {
  return secrets.reduce((t, s) => t.split(s).join('***'), text);
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // a stray '%' is kept as written
  }
}
