import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** `auto`: pretty when standard output is a terminal, JSON lines otherwise. */
  format: 'auto' | 'json' | 'pretty';
  /** Bound into every line (node id, role). */
  base?: Record<string, unknown>;
  destination?: NodeJS.WritableStream;
}

/**
 * Field names whose values are replaced in every log line. Secrets are also wrapped in
 * `Secret`, which prints as a placeholder; this list is the second line of defence for values
 * that arrive as plain strings (headers, request bodies).
 */
export const REDACTED_PATHS = [
  'secret', 'secretKey', 'secret_key', 'password', 'token', 'apiKey', 'credential',
  '*.secret', '*.secretKey', '*.secret_key', '*.password', '*.token', '*.apiKey', '*.credential',
  'req.headers.authorization', 'headers.authorization',
];

export function createLogger(options: LoggerOptions): Logger {
  // Standard output is written synchronously: a node that exits right after logging (a refused
  // join, a failed start) must not lose its last lines in a pipe buffer.
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  const isTerminal = options.destination ? (options.destination as { isTTY?: boolean }).isTTY === true : process.stdout.isTTY === true;
  const usePretty = options.format === 'pretty' || (options.format === 'auto' && isTerminal);
  const base = { ...(options.base ?? {}) };
  const pinoOptions = { level: options.level, base, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  if (usePretty) {
    return pino(pinoOptions, pretty({ destination: options.destination ?? 1, sync: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }));
  }
  return pino(pinoOptions, destination);
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
