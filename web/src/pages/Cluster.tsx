import type { PageProps } from '../main';
import { Health, When } from '../widgets';

export function Cluster({ view }: PageProps) {
  if (!view) return <p>Waiting for the cluster view…</p>;
  return (
    <section aria-labelledby="cluster-title">
      <h1 id="cluster-title">Cluster</h1>
      {view.mixedVersions && (
        <div class="banner banner-warn" role="alert">
          Mixed versions in the cluster: {view.versions.join(', ')}. Finish the upgrade so that every node runs the same version.
        </div>
      )}
      <p>
        Cluster <strong>{view.clusterId}</strong>, this node is the <strong>{view.role}</strong> (epoch {view.epoch}); configuration version{' '}
        <strong>{view.configVersion}</strong>.
      </p>
      <table id="nodes" aria-labelledby="nodes-caption">
        <caption id="nodes-caption">Nodes</caption>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Role</th>
            <th scope="col">Address</th>
            <th scope="col">Version</th>
            <th scope="col">State</th>
            <th scope="col">Health</th>
            <th scope="col">Last updated</th>
            <th scope="col">Configuration version</th>
            <th scope="col">Replication</th>
          </tr>
        </thead>
        <tbody>
          {view.nodes.map((n) => (
            <tr key={n.id} data-node={n.id}>
              <th scope="row">{n.id}</th>
              <td>{n.role}</td>
              <td>{n.address}</td>
              <td>{n.version}</td>
              <td class={`state state-${n.state}`} data-state={n.state}>
                {n.state}
              </td>
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
      {view.notes.length > 0 && (
        <ul class="notes">
          {view.notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      )}
    </section>
  );
}
