/**
 * A reader for the subset of YAML that the files in deploy/ are written in, so that a test can
 * check them against the code without a YAML library (the project has none). Anything outside
 * the subset is refused with the line number, never guessed at, so a manifest that starts
 * using more of YAML fails the test until this reader (or a real parser) is extended.
 *
 * The subset:
 * - documents separated by `---` lines; `#` comments (whole lines, or after a space);
 * - block mappings (`key: value`, `key:` with a nested block) and block sequences (`- item`,
 *   `- key: value` continuing on the lines indented like its first key), indented with spaces;
 * - scalars: plain (on one line; `true`/`false`, `null`/`~`, decimal integers and numbers are
 *   typed, anything else is a string), "double-quoted" (escapes \" \\ \n \t), 'single-quoted'
 *   ('' for a quote);
 * - flow sequences of scalars on one line (`["a", "b"]`), and the empty `[]` and `{}`;
 * - literal block scalars `|` and `|-` (kept line breaks; `|-` without the final one).
 *
 * Refused: tabs in indentation, anchors, aliases, tags, folded (`>`) and `|+` scalars,
 * multi-line plain or quoted scalars, flow mappings with content, complex keys, and
 * duplicate keys.
 */

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

export class YamlSubsetError extends Error {}

interface Line {
  /** 1-based line number in the file, for messages. */
  number: number;
  indent: number;
  /** The line without its indentation (comments not yet removed). */
  text: string;
}

/** Every document of `source`, in order; empty documents are left out. */
export function parseYamlDocuments(source: string, file = 'input'): YamlValue[] {
  const documents: Line[][] = [[]];
  source.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^---\s*(#.*)?$/.test(line)) {
      documents.push([]);
      return;
    }
    if (/^\.\.\.\s*$/.test(line)) throw new YamlSubsetError(`${file}:${i + 1}: document end markers are outside the subset`);
    const indentText = /^[ \t]*/.exec(line)![0];
    if (indentText.includes('\t') && line.trim() !== '') throw new YamlSubsetError(`${file}:${i + 1}: tab in indentation`);
    documents[documents.length - 1]!.push({ number: i + 1, indent: indentText.length, text: line.slice(indentText.length) });
  });
  return documents.map((lines) => new Reader(lines, file).document()).filter((d): d is YamlValue => d !== undefined);
}

const isBlank = (l: Line): boolean => l.text === '' || l.text.startsWith('#');

class Reader {
  private i = 0;

  constructor(
    private readonly lines: Line[],
    private readonly file: string,
  ) {}

  document(): YamlValue | undefined {
    const first = this.nextContent();
    if (first === undefined) return undefined;
    const value = this.block(first.indent);
    const rest = this.nextContent();
    if (rest) throw this.error(rest, 'unexpected content after the document\'s top-level block');
    return value;
  }

  private error(line: Line, message: string): YamlSubsetError {
    return new YamlSubsetError(`${this.file}:${line.number}: ${message}`);
  }

  /** The next line that is neither blank nor a comment, without consuming it. */
  private nextContent(): Line | undefined {
    while (this.i < this.lines.length && isBlank(this.lines[this.i]!)) this.i++;
    return this.lines[this.i];
  }

  private block(indent: number): YamlValue {
    const line = this.nextContent()!;
    return line.text === '-' || line.text.startsWith('- ') ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    for (let line = this.nextContent(); line && line.indent === indent && (line.text === '-' || line.text.startsWith('- ')); line = this.nextContent()) {
      const rest = line.text.slice(1).trimStart();
      if (rest === '' || rest.startsWith('#')) {
        this.i++;
        const next = this.nextContent();
        if (!next || next.indent <= indent) throw this.error(line, 'an empty sequence item');
        items.push(this.block(next.indent));
        continue;
      }
      // `- key: value` or `- - x`: the item is a block starting at the column of its content.
      const column = indent + (line.text.length - rest.length);
      if (rest === '-' || rest.startsWith('- ') || keyOf(rest) !== undefined) {
        this.lines[this.i] = { number: line.number, indent: column, text: rest };
        items.push(this.block(column));
        continue;
      }
      this.i++;
      items.push(this.inline(rest, line));
    }
    const stray = this.nextContent();
    if (stray && stray.indent > indent) throw this.error(stray, 'indented more than the sequence it follows');
    return items;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const map: { [key: string]: YamlValue } = {};
    for (let line = this.nextContent(); line && line.indent === indent; line = this.nextContent()) {
      if (line.text === '-' || line.text.startsWith('- ')) throw this.error(line, 'a sequence item where a mapping key was expected');
      const entry = keyOf(line.text);
      if (!entry) throw this.error(line, `not a "key: value" line: ${line.text}`);
      if (Object.hasOwn(map, entry.key)) throw this.error(line, `duplicate key ${entry.key}`);
      this.i++;
      const rest = stripComment(entry.rest, line, this.file);
      if (rest === '') {
        const next = this.nextContent();
        if (next && next.indent > indent) map[entry.key] = this.block(next.indent);
        else if (next && next.indent === indent && (next.text === '-' || next.text.startsWith('- '))) map[entry.key] = this.sequence(indent);
        else map[entry.key] = null;
      } else if (rest === '|' || rest === '|-') {
        map[entry.key] = this.literal(indent, rest === '|-', line);
      } else {
        map[entry.key] = this.inline(rest, line);
      }
    }
    const stray = this.nextContent();
    if (stray && stray.indent > indent) throw this.error(stray, 'indented more than the mapping it follows');
    return map;
  }

  /** A literal block scalar: the lines indented more than its key, with that indentation removed. */
  private literal(indent: number, strip: boolean, header: Line): string {
    const body: Line[] = [];
    while (this.i < this.lines.length) {
      const l = this.lines[this.i]!;
      if (l.text !== '' && l.indent <= indent) break;
      body.push(l);
      this.i++;
    }
    while (body.length > 0 && body[body.length - 1]!.text === '') body.pop();
    if (body.length === 0) throw this.error(header, 'an empty block scalar');
    const contentIndent = body[0]!.indent;
    const text = body
      .map((l) => {
        if (l.text === '') return '';
        if (l.indent < contentIndent) throw this.error(l, 'a block scalar line indented less than its first line');
        return ' '.repeat(l.indent - contentIndent) + l.text;
      })
      .join('\n');
    return strip ? text : `${text}\n`;
  }

  /** A value written on the line of its key or dash: a scalar, or a flow sequence of scalars. */
  private inline(text: string, line: Line): YamlValue {
    const value = stripComment(text, line, this.file);
    if (value === '{}') return {};
    if (value.startsWith('{')) throw this.error(line, 'flow mappings are outside the subset');
    if (value.startsWith('[')) {
      if (!value.endsWith(']')) throw this.error(line, 'a flow sequence must end on its line');
      const inner = value.slice(1, -1).trim();
      return inner === '' ? [] : splitFlow(inner, line, this.file).map((item) => scalar(item, line, this.file));
    }
    if (value === '|' || value === '|-') throw this.error(line, 'a block scalar in a sequence item is outside the subset');
    return scalar(value, line, this.file);
  }
}

/** `key: rest` (the key plain or quoted); undefined when the text is not a mapping entry. */
function keyOf(text: string): { key: string; rest: string } | undefined {
  const quoted = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s+(.*))?$/.exec(text);
  if (quoted) return { key: unquote(quoted[1]!), rest: quoted[2] ?? '' };
  const plain = /^([^\s"'#&*!|>%@`{}[\],?-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?:\s+(.*)|$)/.exec(text);
  if (!plain) return undefined;
  return { key: plain[1]!, rest: plain[2] ?? '' };
}

/** The value without a trailing comment (` #` outside quotes). */
function stripComment(text: string, line: Line, file: string): string {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (quote === '"' && c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || text[i - 1] === ' ')) {
      return text.slice(0, i).trim();
    }
  }
  if (quote) throw new YamlSubsetError(`${file}:${line.number}: a quoted scalar must end on its line`);
  return text.trim();
}

function splitFlow(inner: string, line: Line, file: string): string[] {
  const items: string[] = [];
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote) {
      if (quote === '"' && c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') throw new YamlSubsetError(`${file}:${line.number}: nested flow collections are outside the subset`);
    else if (c === ',') {
      items.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  items.push(inner.slice(start).trim());
  if (items.some((item) => item === '')) throw new YamlSubsetError(`${file}:${line.number}: an empty item in a flow sequence`);
  return items;
}

function unquote(text: string): string {
  if (text.startsWith("'")) return text.slice(1, -1).replaceAll("''", "'");
  return text.slice(1, -1).replace(/\\(.)/g, (_m, c: string) => {
    const escapes: Record<string, string> = { n: '\n', t: '\t', '"': '"', '\\': '\\', '/': '/' };
    if (!(c in escapes)) throw new YamlSubsetError(`the escape \\${c} is outside the subset`);
    return escapes[c]!;
  });
}

function scalar(text: string, line: Line, file: string): YamlValue {
  if (/^"(?:[^"\\]|\\.)*"$/.test(text) || /^'(?:[^']|'')*'$/.test(text)) {
    try {
      return unquote(text);
    } catch (err) {
      throw new YamlSubsetError(`${file}:${line.number}: ${(err as Error).message}`);
    }
  }
  if (/^["']/.test(text)) throw new YamlSubsetError(`${file}:${line.number}: a quoted scalar with text after its closing quote`);
  if (/^[&*!|>%@`]/.test(text)) throw new YamlSubsetError(`${file}:${line.number}: anchors, aliases, tags, folded scalars and reserved indicators are outside the subset: ${text}`);
  if (/:\s|:$/.test(text)) throw new YamlSubsetError(`${file}:${line.number}: a plain scalar containing ": " (a nested mapping on one line?) is outside the subset: ${text}`);
  if (text === 'true' || text === 'false') return text === 'true';
  if (text === 'null' || text === '~') return null;
  if (/^-?(0|[1-9]\d*)(\.\d+)?$/.test(text)) return Number(text);
  return text;
}
