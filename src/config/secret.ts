import { inspect } from 'node:util';

/**
 * A secret value that refuses to be printed: JSON, string conversion and util.inspect all
 * give a placeholder, so a secret passed to a logger or an error message by mistake leaks
 * nothing. `reveal()` is the one way to read it, and is easy to grep for.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[secret]';
  }

  toString(): string {
    return '[secret]';
  }

  [inspect.custom](): string {
    return '[secret]';
  }
}

/**
 * Secrets that appear in tutorials and sample files. A node starts with one (the operator may be
 * trying things out) but warns, because anyone who read the same page can join the cluster.
 */
export const KNOWN_DEFAULT_SECRETS: ReadonlySet<string> = new Set([
  'secret', 'changeme', 'changeit', 'change-me', 'password', 'passw0rd', 'admin', 'default', 'cohort',
  'cluster', 'test', '123456', '12345678', 'qwerty', 'letmein', 'example', 'sample',
]);
