import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../api';
import type { PageProps } from '../main';
import { ErrorText, When } from '../widgets';

interface KeyEntry {
  id: string;
  name: string;
  scope?: string;
  createdAt: string;
  createdBy: string;
}

const SCOPES = ['runtime', 'gateway', 'client'];

export function ApiKeys({ readOnly }: PageProps) {
  const [keys, setKeys] = useState<KeyEntry[]>([]);
  const [name, setName] = useState('');
  const [scope, setScope] = useState('runtime');
  const [created, setCreated] = useState<{ id: string; name: string; key: string } | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  const load = async (): Promise<void> => {
    try {
      setKeys((await api<{ keys: KeyEntry[] }>('GET', '/admin/v1/api-keys')).keys);
    } catch (e) {
      setError(messageOf(e));
    }
  };
  useEffect(() => {
    void load();
  }, []);

  const create = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setCreated(undefined);
    try {
      const k = await api<{ id: string; name: string; key: string }>('POST', '/admin/v1/api-keys', { name, scope });
      setCreated({ id: k.id, name: k.name, key: k.key });
      setName('');
      await load();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  const revoke = async (k: KeyEntry): Promise<void> => {
    if (!window.confirm(`Revoke API key ${k.name} (${k.id})? Requests that use it will be refused.`)) return;
    setError(undefined);
    try {
      await api('DELETE', `/admin/v1/api-keys/${encodeURIComponent(k.id)}`);
      if (created?.id === k.id) setCreated(undefined);
      await load();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <>
      <h1>API keys</h1>
      <section aria-labelledby="create-key-title">
        <h2 id="create-key-title">Create a key</h2>
        <form class="inline" onSubmit={create} aria-label="Create an API key">
          <label for="key-name">Name</label>
          <input id="key-name" value={name} required maxLength={200} disabled={readOnly !== undefined} onInput={(e) => setName(e.currentTarget.value)} />
          <label for="key-scope">Scope</label>
          <select id="key-scope" value={scope} disabled={readOnly !== undefined} onChange={(e) => setScope(e.currentTarget.value)}>
            {SCOPES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
          <button type="submit" disabled={readOnly !== undefined}>
            Create key
          </button>
        </form>
        {created && (
          <div class="banner banner-ok once" role="status">
            <p>
              Key <strong>{created.name}</strong> created. Copy it now: it is shown this once, and the console keeps only its hash.
            </p>
            <label for="new-key">New API key</label>
            <input id="new-key" class="secret" readOnly value={created.key} onFocus={(e) => e.currentTarget.select()} />
            <button type="button" onClick={() => setCreated(undefined)}>
              I have copied it
            </button>
          </div>
        )}
        <ErrorText error={error} />
      </section>
      <section aria-labelledby="keys-title">
        <h2 id="keys-title">Keys</h2>
        <table aria-labelledby="keys-caption">
          <caption id="keys-caption">API keys</caption>
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Name</th>
              <th scope="col">Scope</th>
              <th scope="col">Created</th>
              <th scope="col">By</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-key={k.id}>
                <td>{k.id}</td>
                <th scope="row">{k.name}</th>
                <td>{k.scope ?? 'runtime'}</td>
                <td>
                  <When at={k.createdAt} />
                </td>
                <td>{k.createdBy}</td>
                <td>
                  <button type="button" disabled={readOnly !== undefined} onClick={() => void revoke(k)} aria-label={`Revoke ${k.name}`}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {keys.length === 0 && <p>No key issued yet.</p>}
      </section>
    </>
  );
}
