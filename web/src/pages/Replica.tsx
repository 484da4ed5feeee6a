import { useState } from 'preact/hooks';
import { api, messageOf } from '../api';
import type { PageProps } from '../main';
import { ErrorText, Health, Notice, When } from '../widgets';

export function Replica({ view, session }: PageProps) {
  const [confirming, setConfirming] = useState(false);
  const [force, setForce] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  if (!view) return <p>Waiting for the cluster view…</p>;
  const replicas = view.nodes.filter((n) => n.role === 'replica');
  const here = view.role;
  const canPromote = here !== 'console' && session.role === 'admin';

  const promote = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const r = await api<{ epoch: number }>('POST', '/admin/v1/replica/promote', force ? { force: true } : {});
      setDone(`Promoted: this node is now the console (epoch ${r.epoch}).`);
      setConfirming(false);
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <>
      <h1>Replica</h1>
      <p>
        This node is the <strong>{here}</strong>.{' '}
        {here === 'console' ? 'A replica is promoted from its own console page (its admin address), or with cohort replica promote.' : 'It pulls the configuration from the console and can take over when the console is lost.'}
      </p>
      {done && <Notice>{done}</Notice>}
      <table aria-labelledby="replicas-caption">
        <caption id="replicas-caption">Replicas</caption>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Address</th>
            <th scope="col">State</th>
            <th scope="col">Health</th>
            <th scope="col">Last updated</th>
            <th scope="col">Configuration version</th>
            <th scope="col">Replication</th>
          </tr>
        </thead>
        <tbody>
          {replicas.map((n) => (
            <tr key={n.id}>
              <th scope="row">{n.id}</th>
              <td>{n.address}</td>
              <td>{n.state}</td>
              <td>
                <Health health={n.health} />
              </td>
              <td>
                <When at={n.lastUpdated} />
              </td>
              <td>{n.configVersion ?? '—'}</td>
              <td>{n.replication ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {replicas.length === 0 && <p>The cluster has no replica.</p>}
      {here !== 'console' && (
        <section aria-labelledby="promote-title">
          <h2 id="promote-title">Promote</h2>
          {!confirming ? (
            <button type="button" disabled={!canPromote} onClick={() => setConfirming(true)}>
              Promote this replica…
            </button>
          ) : (
            <form class="stack confirm" onSubmit={promote} aria-label="Confirm the promotion">
              <p role="alert">
                Promote this node to console? Engines will follow it, and a console that comes back later is demoted. Promotion is refused while the old console still answers, unless forced.
              </p>
              <label class="check">
                <input type="checkbox" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} />
                Force, even if the console still answers
              </label>
              <div class="actions">
                <button type="submit">Yes, promote</button>
                <button type="button" onClick={() => setConfirming(false)}>
                  Cancel
                </button>
              </div>
            </form>
          )}
          <ErrorText error={error} />
        </section>
      )}
    </>
  );
}
