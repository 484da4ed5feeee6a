import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import { diffLines, stableJson } from '../diff';
import { errorsByField, leafFields, parseInput, withValue, type Leaf } from '../fields';
import type { PageProps } from '../main';
import { ErrorText, Notice, When } from '../widgets';

const SECTIONS = ['runtime', 'services', 'apis', 'api-keys', 'schedules'] as const;
/** Written through their own pages (and API routes), never saved whole. */
const MANAGED: Record<string, string> = { 'api-keys': 'API keys', schedules: 'Schedules' };

interface SectionDoc {
  section: string;
  version: number | null;
  author: string | null;
  createdAt: number | null;
  content: unknown;
}

interface VersionSummary {
  section: string;
  version: number;
  epoch: number;
  author: string;
  createdAt: number;
}

export function Configuration(props: PageProps) {
  return (
    <>
      <h1>Configuration</h1>
      <SectionEditor {...props} />
      <Versions />
      <Audit />
    </>
  );
}

function SectionEditor({ readOnly }: PageProps) {
  const [section, setSection] = useState<string>('runtime');
  const [doc, setDoc] = useState<SectionDoc | undefined>(undefined);
  const [draft, setDraft] = useState<unknown>(undefined);
  const [json, setJson] = useState('');
  const [errors, setErrors] = useState<string[]>([]);
  const [error, setError] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);

  // The section whose document the editors show: until it has loaded they are not shown, so
  // nothing typed early is overwritten when the document arrives (nor saved in its place).
  const [loaded, setLoaded] = useState<string | undefined>(undefined);

  useEffect(() => {
    let current = true;
    setErrors([]);
    setError(undefined);
    setSaved(undefined);
    api<SectionDoc>('GET', `/admin/v1/config/${section}`)
      .then((d) => {
        // A section chosen since: its own load fills the editors.
        if (!current) return;
        setDoc(d);
        setDraft(d.content);
        setJson(JSON.stringify(d.content, null, 2));
        setLoaded(section);
      })
      .catch((e: unknown) => {
        if (current) setError(messageOf(e));
      });
    return () => {
      current = false;
    };
  }, [section]);

  const save = async (content: unknown): Promise<void> => {
    setErrors([]);
    setError(undefined);
    setSaved(undefined);
    try {
      const d = await api<SectionDoc>('PUT', `/admin/v1/config/${section}`, content);
      setSaved(`Saved as version ${d.version}.`);
      setDoc(d);
      setDraft(d.content);
      setJson(JSON.stringify(d.content, null, 2));
    } catch (e) {
      if (e instanceof ApiError && e.errors.length > 0) setErrors(e.errors);
      setError(messageOf(e));
    }
  };

  const saveJson = (): void => {
    let content: unknown;
    try {
      content = JSON.parse(json);
    } catch (e) {
      setErrors([]);
      setError(`The document is not valid JSON: ${(e as Error).message}`);
      return;
    }
    void save(content);
  };

  const fields = leafFields(draft);
  const { at, other } = errorsByField(errors, fields.map((f) => f.path));
  const managed = MANAGED[section];
  const disabled = readOnly !== undefined || managed !== undefined;

  return (
    <section aria-labelledby="section-title">
      <h2 id="section-title">Sections</h2>
      <label for="section">Section</label>
      <select id="section" value={section} onChange={(e) => setSection(e.currentTarget.value)}>
        {SECTIONS.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      {doc && (
        <p>
          {doc.version === null ? 'Never saved: the defaults apply.' : <>Version {doc.version}, saved by {doc.author} at <When at={new Date(doc.createdAt ?? 0).toISOString()} />.</>}
        </p>
      )}
      {managed && <p>This section is changed on the {managed} page.</p>}
      {saved && <Notice>{saved}</Notice>}
      <ErrorText error={error} />

      {loaded === section && (
        <>
        <form
          class="fields"
          aria-label={`${section} fields`}
          onSubmit={(e) => {
            e.preventDefault();
            void save(draft);
          }}
        >
          <h3>Fields</h3>
          {fields.length === 0 && <p>No values set in this section: add them in the JSON document below.</p>}
          {fields.map((f) => {
            const id = `field-${f.path}`;
            const problems = at.get(f.path);
            return (
              <div class="field" key={f.path}>
                <label for={id}>{f.path}</label>
                {typeof f.value === 'boolean' ? (
                  <input id={id} type="checkbox" checked={f.value} disabled={disabled} onChange={(e) => setDraft(withValue(draft, f.path, e.currentTarget.checked))} />
                ) : (
                  <input
                    id={id}
                    value={f.value === null ? '' : String(f.value)}
                    disabled={disabled}
                    aria-invalid={problems ? 'true' : undefined}
                    aria-describedby={problems ? `${id}-error` : undefined}
                    onInput={(e) => setDraft(withValue(draft, f.path, parseInput(e.currentTarget.value, originalLeaf(doc?.content, f.path, f.value))))}
                  />
                )}
                {problems && (
                  <span id={`${id}-error`} class="field-error" role="alert">
                    {problems.join('; ')}
                  </span>
                )}
              </div>
            );
          })}
          {fields.length > 0 && (
            <button type="submit" disabled={disabled}>
              Save fields
            </button>
          )}
        </form>

        <form
          class="json"
          aria-label={`${section} JSON document`}
          onSubmit={(e) => {
            e.preventDefault();
            saveJson();
          }}
        >
          <h3>JSON document</h3>
          <label for="json">Document of section {section} (JSON)</label>
          <textarea
            id="json"
            rows={12}
            spellcheck={false}
            value={json}
            readOnly={disabled}
            aria-invalid={other.length > 0 ? 'true' : undefined}
            aria-describedby={other.length > 0 ? 'json-errors' : undefined}
            onInput={(e) => setJson(e.currentTarget.value)}
          />
          {other.length > 0 && (
            <ul id="json-errors" class="field-error" role="alert">
              {other.map((e) => (
                <li key={e}>{e}</li>
              ))}
            </ul>
          )}
          <button type="submit" disabled={disabled}>
            Save document
          </button>
        </form>
        </>
      )}
    </section>
  );
}

/** A field's type comes from the saved document, so an edit that does not parse stays text (and the schema says so). */
function originalLeaf(content: unknown, path: string, fallback: Leaf): Leaf {
  const f = leafFields(content).find((x) => x.path === path);
  return f ? f.value : fallback;
}

function Versions() {
  const [versions, setVersions] = useState<VersionSummary[]>([]);
  const [more, setMore] = useState(false);
  const [a, setA] = useState('');
  const [b, setB] = useState('');
  const [diff, setDiff] = useState<ReturnType<typeof diffLines> | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const PAGE = 20;

  const loadPage = async (before?: number): Promise<void> => {
    try {
      const { versions: page } = await api<{ versions: VersionSummary[] }>('GET', `/admin/v1/config/versions?limit=${PAGE}${before ? `&beforeVersion=${before}` : ''}`);
      setVersions((v) => (before ? [...v, ...page] : page));
      setMore(page.length === PAGE);
      if (!before && page.length > 0) {
        setB(String(page[0]!.version));
        setA(String((page.find((p) => p.section === page[0]!.section && p.version !== page[0]!.version) ?? page[0]!).version));
      }
    } catch (e) {
      setError(messageOf(e));
    }
  };
  useEffect(() => {
    void loadPage();
  }, []);

  const compare = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const [da, db] = await Promise.all([a, b].map((v) => api<SectionDoc>('GET', `/admin/v1/config/versions/${v}`)));
      setDiff(diffLines(stableJson({ section: da!.section, content: da!.content }), stableJson({ section: db!.section, content: db!.content })));
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section aria-labelledby="versions-title">
      <h2 id="versions-title">Versions</h2>
      <button type="button" onClick={() => void loadPage()}>
        Refresh versions
      </button>
      <table aria-labelledby="versions-caption">
        <caption id="versions-caption">Configuration versions</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Section</th>
            <th scope="col">Epoch</th>
            <th scope="col">Author</th>
            <th scope="col">Saved</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <td>{v.version}</td>
              <td>{v.section}</td>
              <td>{v.epoch}</td>
              <td>{v.author}</td>
              <td>
                <When at={new Date(v.createdAt).toISOString()} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {more && (
        <button type="button" onClick={() => void loadPage(versions[versions.length - 1]?.version)}>
          Older versions
        </button>
      )}
      <form class="inline" onSubmit={compare} aria-label="Compare two versions">
        <label for="diff-a">From version</label>
        <select id="diff-a" value={a} onChange={(e) => setA(e.currentTarget.value)}>
          {versions.map((v) => (
            <option key={v.version} value={v.version}>
              {v.version} ({v.section})
            </option>
          ))}
        </select>
        <label for="diff-b">To version</label>
        <select id="diff-b" value={b} onChange={(e) => setB(e.currentTarget.value)}>
          {versions.map((v) => (
            <option key={v.version} value={v.version}>
              {v.version} ({v.section})
            </option>
          ))}
        </select>
        <button type="submit" disabled={versions.length === 0}>
          Show diff
        </button>
      </form>
      <ErrorText error={error} />
      {diff && (
        <pre class="diff" aria-label="Differences between the two versions">
          {diff.map((l, i) => (
            <span key={i} class={`diff-${l.kind}`}>
              {l.kind === 'added' ? '+ ' : l.kind === 'removed' ? '- ' : '  '}
              {l.text}
              {'\n'}
            </span>
          ))}
        </pre>
      )}
    </section>
  );
}

interface AuditRecord {
  id: number;
  at: string;
  user: string;
  node: string;
  action: string;
  section: string | null;
  versionBefore: number | null;
  versionAfter: number | null;
  summary: string;
}

function Audit() {
  const [records, setRecords] = useState<AuditRecord[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [user, setUser] = useState('');
  const [section, setSection] = useState('');
  const [action, setAction] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);

  const load = async (before?: number): Promise<void> => {
    setError(undefined);
    const q = new URLSearchParams({ limit: '20' });
    if (user) q.set('user', user);
    if (section) q.set('section', section);
    if (action) q.set('action', action);
    if (before) q.set('beforeId', String(before));
    try {
      const page = await api<{ records: AuditRecord[]; nextBeforeId: number | null }>('GET', `/admin/v1/audit?${q.toString()}`);
      setRecords((r) => (before ? [...r, ...page.records] : page.records));
      setNext(page.nextBeforeId);
    } catch (e) {
      setError(messageOf(e));
    }
  };
  useEffect(() => {
    void load();
  }, []);

  return (
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit trail</h2>
      <form
        class="inline"
        aria-label="Filter the audit trail"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <label for="audit-user">Filter by user</label>
        <input id="audit-user" value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        <label for="audit-section">Filter by section</label>
        <select id="audit-section" value={section} onChange={(e) => setSection(e.currentTarget.value)}>
          <option value="">any</option>
          {SECTIONS.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label for="audit-action">Filter by action</label>
        <input id="audit-action" value={action} onInput={(e) => setAction(e.currentTarget.value)} placeholder="config.save" />
        <button type="submit">Filter</button>
      </form>
      <ErrorText error={error} />
      <table aria-labelledby="audit-caption">
        <caption id="audit-caption">Audit records</caption>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">When</th>
            <th scope="col">User</th>
            <th scope="col">Node</th>
            <th scope="col">Action</th>
            <th scope="col">Section</th>
            <th scope="col">Versions</th>
            <th scope="col">Summary</th>
          </tr>
        </thead>
        <tbody>
          {records.map((r) => (
            <tr key={r.id}>
              <td>{r.id}</td>
              <td>
                <When at={r.at} />
              </td>
              <td>{r.user}</td>
              <td>{r.node}</td>
              <td>{r.action}</td>
              <td>{r.section ?? '—'}</td>
              <td>
                {r.versionBefore ?? '—'} → {r.versionAfter ?? '—'}
              </td>
              <td>{r.summary}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {records.length === 0 && <p>No audit record matches.</p>}
      {next !== null && (
        <button type="button" onClick={() => void load(next)}>
          Older records
        </button>
      )}
    </section>
  );
}
