import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../api';
import type { PageProps } from '../main';
import { ErrorText, Notice } from '../widgets';

interface ApiDefinition {
  id: string;
  pathPrefix: string;
  hosts?: string[];
  methods?: string[];
  credentials?: string[];
  enforce?: boolean;
  [more: string]: unknown;
}

interface DryRun {
  decision: 'allow' | 'deny';
  status?: number;
  reason: string;
  wouldDeny?: string;
  api?: string;
  subject?: string;
  skipped?: string[];
  detail?: string;
  upstreamHeaders?: Record<string, string>;
}

export function Apis({ readOnly }: PageProps) {
  const [apis, setApis] = useState<ApiDefinition[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);

  const load = async (): Promise<void> => {
    try {
      const doc = await api<{ content: { apis: ApiDefinition[] } }>('GET', '/admin/v1/config/apis');
      setApis(doc.content.apis);
    } catch (e) {
      setError(messageOf(e));
    }
  };
  useEffect(() => {
    void load();
  }, []);

  const setEnforce = async (id: string, enforce: boolean): Promise<void> => {
    setError(undefined);
    setSaved(undefined);
    try {
      // Read, change one field, save: the whole section is one document (a new version).
      const doc = await api<{ content: { apis: ApiDefinition[] } }>('GET', '/admin/v1/config/apis');
      const next = doc.content.apis.map((a) => (a.id === id ? { ...a, enforce } : a));
      const result = await api<{ version: number; content: { apis: ApiDefinition[] } }>('PUT', '/admin/v1/config/apis', { apis: next });
      setApis(result.content.apis);
      setSaved(`${id}: ${enforce ? 'enforce' : 'monitor'} mode, saved as version ${result.version}.`);
    } catch (e) {
      setError(messageOf(e));
    }
  };

  return (
    <>
      <h1>APIs</h1>
      <section aria-labelledby="apis-title">
        <h2 id="apis-title">Definitions</h2>
        <p>Edit definitions as a whole in Configuration, section apis. Monitor mode decides and logs but lets every request through.</p>
        {saved && <Notice>{saved}</Notice>}
        <ErrorText error={error} />
        {apis && apis.length === 0 && <p>No API is defined yet.</p>}
        {apis && apis.length > 0 && (
          <table aria-labelledby="apis-caption">
            <caption id="apis-caption">API definitions</caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Path prefix</th>
                <th scope="col">Hosts</th>
                <th scope="col">Methods</th>
                <th scope="col">Credentials</th>
                <th scope="col">Enforce</th>
              </tr>
            </thead>
            <tbody>
              {apis.map((a) => {
                const enforce = a.enforce !== false;
                return (
                  <tr key={a.id}>
                    <th scope="row">{a.id}</th>
                    <td>{a.pathPrefix}</td>
                    <td>{a.hosts?.join(', ') || 'any'}</td>
                    <td>{a.methods?.join(', ') || 'any'}</td>
                    <td>{a.credentials?.join(', ') || 'none'}</td>
                    <td>
                      <label class="switch">
                        <input type="checkbox" role="switch" checked={enforce} disabled={readOnly !== undefined} onChange={(e) => void setEnforce(a.id, e.currentTarget.checked)} />
                        {enforce ? 'enforce' : 'monitor'}
                        <span class="visually-hidden"> mode of {a.id}</span>
                      </label>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>
      <TryRequest />
    </>
  );
}

/** "Try a request": the dry run of a decision on the current definitions; nothing is stored or counted. */
function TryRequest() {
  const [method, setMethod] = useState('GET');
  const [url, setUrl] = useState('/');
  const [host, setHost] = useState('');
  const [sourceIp, setSourceIp] = useState('127.0.0.1');
  const [headers, setHeaders] = useState('');
  const [result, setResult] = useState<DryRun | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  const run = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setResult(undefined);
    const parsed: Record<string, string> = {};
    for (const line of headers.split('\n')) {
      if (line.trim() === '') continue;
      const colon = line.indexOf(':');
      if (colon <= 0) {
        setError(`Header line "${line}" is not "Name: value".`);
        return;
      }
      parsed[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    try {
      setResult(await api<DryRun>('POST', '/admin/v1/apis/test', { request: { method, url, ...(host ? { host } : {}), sourceIp, headers: parsed } }));
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section aria-labelledby="try-title">
      <h2 id="try-title">Try a request</h2>
      <form class="stack" onSubmit={run} aria-label="Try a request">
        <label for="try-method">Method</label>
        <select id="try-method" value={method} onChange={(e) => setMethod(e.currentTarget.value)}>
          {['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
        <label for="try-url">URL (path and query)</label>
        <input id="try-url" value={url} required onInput={(e) => setUrl(e.currentTarget.value)} />
        <label for="try-host">Host</label>
        <input id="try-host" value={host} onInput={(e) => setHost(e.currentTarget.value)} />
        <label for="try-ip">Source address</label>
        <input id="try-ip" value={sourceIp} required onInput={(e) => setSourceIp(e.currentTarget.value)} />
        <label for="try-headers">Headers (one "Name: value" per line)</label>
        <textarea id="try-headers" rows={3} value={headers} onInput={(e) => setHeaders(e.currentTarget.value)} />
        <button type="submit">Try it</button>
      </form>
      <ErrorText error={error} />
      {result && (
        <div class={`decision decision-${result.decision}`} role="status" aria-label="Decision">
          <p>
            <strong>{result.decision === 'allow' ? 'Allowed' : 'Denied'}</strong> ({result.reason}
            {result.status ? `, status ${result.status}` : ''}){result.api ? ` by API ${result.api}` : ''}
            {result.wouldDeny ? `; enforce mode would deny: ${result.wouldDeny}` : ''}
          </p>
          {result.detail && <p>{result.detail}</p>}
          {result.skipped && result.skipped.length > 0 && <p>Not checked in a dry run: {result.skipped.join(', ')}.</p>}
        </div>
      )}
    </section>
  );
}
