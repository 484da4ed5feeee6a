import { parse as parseIni } from 'ini';
import { CohortError } from '../core/errors.js';

/** Raw values by section and key, exactly as written (after comment and quote handling). */
export type RawSections = Map<string, Map<string, { value: string; line: number }>>;

const SECTION_LINE = /^\[([A-Za-z0-9_]+)\]\s*(?:[;#].*)?$/;
const KEY_LINE = /^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)\s*=(.*)$/;

/**
 * Parses the text of a node configuration file.
 *
 * The `ini` package is forgiving: a stray word becomes a key set to `true`, and `[section`
 * becomes a key. An operator's typo must stop the node instead, so every line is first checked
 * to be blank, a `;`/`#` comment, a `[section]` or a `key = value`; then `ini` does the value
 * handling (quotes, inline comments, escapes).
 */
export function parseConfigText(text: string, file: string): RawSections {
  const lines = text.split(/\r?\n/);
  const seen = new Map<string, number>();
  const lineOf = new Map<string, number>();
  let section: string | undefined;
  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const sectionMatch = SECTION_LINE.exec(line);
    if (sectionMatch) {
      section = sectionMatch[1]!;
      if (seen.has(`[${section}]`)) {
        throw syntax(file, lineNo, `section [${section}] appears twice (first on line ${seen.get(`[${section}]`)})`);
      }
      seen.set(`[${section}]`, lineNo);
      return;
    }
    const keyMatch = KEY_LINE.exec(line);
    if (!keyMatch) throw syntax(file, lineNo, `"${truncate(line)}" is not a [section], a key = value pair or a comment`);
    if (section === undefined) throw syntax(file, lineNo, `key "${keyMatch[1]}" comes before any [section]`);
    const id = `${section}.${keyMatch[1]}`;
    if (seen.has(id)) throw syntax(file, lineNo, `[${section}] ${keyMatch[1]} is set twice (first on line ${seen.get(id)})`);
    seen.set(id, lineNo);
    lineOf.set(id, lineNo);
  });

  const parsed = parseIni(text) as Record<string, unknown>;
  const result: RawSections = new Map();
  for (const [name, body] of Object.entries(parsed)) {
    if (typeof body !== 'object' || body === null) continue; // unreachable: keys outside sections were refused above
    const keys = new Map<string, { value: string; line: number }>();
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      // ini turns true/false/null into JS values; the schema parses strings.
      keys.set(key, { value: value === null ? '' : String(value), line: lineOf.get(`${name}.${key}`) ?? 0 });
    }
    result.set(name, keys);
  }
  return result;
}

function syntax(file: string, line: number, reason: string): CohortError {
  return new CohortError('CONFIG_SYNTAX', `${file}:${line}: ${reason}`, { file, line });
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
