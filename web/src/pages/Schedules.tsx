import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import type { PageProps } from '../main';
import { ErrorText, Notice, When } from '../widgets';

interface Schedule {
  id: string;
  enabled: boolean;
  cron?: string;
  intervalSeconds?: number;
  timezone: string;
  type: string;
  job: { state: string; node: string | null; nextFireAt: string | null } | null;
  [more: string]: unknown;
}

interface Run {
  id?: number;
  fireAt: string | null;
  startedAt: string | null;
  endedAt: string | null;
  node?: string;
  outcome?: string;
  error?: string | null;
}

const EXAMPLE = JSON.stringify({ type: 'purge-expired', intervalSeconds: 3600 }, null, 2);

export function Schedules({ readOnly }: PageProps) {
  const [schedules, setSchedules] = useState<Schedule[]>([]);
  const [runsOf, setRunsOf] = useState<string | undefined>(undefined);
  const [runs, setRuns] = useState<Run[]>([]);
  const [id, setId] = useState('');
  const [definition, setDefinition] = useState(EXAMPLE);
  const [errors, setErrors] = useState<string[]>([]);
  const [error, setError] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const disabled = readOnly !== undefined;

  const load = async (): Promise<void> => {
    try {
      setSchedules((await api<{ schedules: Schedule[] }>('GET', '/admin/v1/schedules')).schedules);
    } catch (e) {
      setError(messageOf(e));
    }
  };
  useEffect(() => {
    void load();
  }, []);

  const act = async (what: () => Promise<unknown>, done: string): Promise<void> => {
    setError(undefined);
    setErrors([]);
    setSaved(undefined);
    try {
      await what();
      setSaved(done);
      await load();
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.errors);
      setError(messageOf(e));
    }
  };

  const create = (e: Event): void => {
    e.preventDefault();
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(definition) as Record<string, unknown>;
    } catch (err) {
      setError(`The definition is not valid JSON: ${(err as Error).message}`);
      return;
    }
    void act(() => api('PUT', `/admin/v1/schedules/${encodeURIComponent(id)}`, { ...body, id }), `Schedule ${id} saved.`);
  };

  const definitionOf = (s: Schedule): Record<string, unknown> => {
    const { job: _job, ...rest } = s;
    return rest;
  };

  const showRuns = async (sid: string): Promise<void> => {
    setRunsOf(sid);
    try {
      setRuns((await api<{ runs: Run[] }>('GET', `/admin/v1/schedules/${encodeURIComponent(sid)}/runs?limit=20`)).runs);
    } catch (e) {
      setError(messageOf(e));
    }
  };

  return (
    <>
      <h1>Schedules</h1>
      {saved && <Notice>{saved}</Notice>}
      <ErrorText error={error} />
      <section aria-labelledby="schedules-title">
        <h2 id="schedules-title">Schedules</h2>
        <table aria-labelledby="schedules-caption">
          <caption id="schedules-caption">Schedules</caption>
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Job</th>
              <th scope="col">When</th>
              <th scope="col">Enabled</th>
              <th scope="col">State</th>
              <th scope="col">Next run</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {schedules.map((s) => (
              <tr key={s.id}>
                <th scope="row">{s.id}</th>
                <td>{s.type}</td>
                <td>{s.cron ? `${s.cron} (${s.timezone})` : `every ${s.intervalSeconds} s`}</td>
                <td>{s.enabled ? 'yes' : 'paused'}</td>
                <td>{s.job ? `${s.job.state}${s.job.node ? ` on ${s.job.node}` : ''}` : '—'}</td>
                <td>
                  <When at={s.job?.nextFireAt} />
                </td>
                <td class="actions">
                  <button type="button" onClick={() => void showRuns(s.id)} aria-label={`Runs of ${s.id}`}>
                    Runs
                  </button>
                  <button
                    type="button"
                    disabled={disabled}
                    aria-label={`${s.enabled ? 'Pause' : 'Resume'} ${s.id}`}
                    onClick={() => void act(() => api('PUT', `/admin/v1/schedules/${encodeURIComponent(s.id)}`, { ...definitionOf(s), enabled: !s.enabled }), `Schedule ${s.id} ${s.enabled ? 'paused' : 'resumed'}.`)}
                  >
                    {s.enabled ? 'Pause' : 'Resume'}
                  </button>
                  <button
                    type="button"
                    disabled={disabled}
                    aria-label={`Delete ${s.id}`}
                    onClick={() => {
                      if (window.confirm(`Delete schedule ${s.id}?`)) void act(() => api('DELETE', `/admin/v1/schedules/${encodeURIComponent(s.id)}`), `Schedule ${s.id} deleted.`);
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {schedules.length === 0 && <p>No schedule yet.</p>}
      </section>
      {runsOf && (
        <section aria-labelledby="runs-title">
          <h2 id="runs-title">Runs of {runsOf}</h2>
          <table aria-labelledby="runs-caption">
            <caption id="runs-caption">Newest runs of {runsOf}</caption>
            <thead>
              <tr>
                <th scope="col">Fire time</th>
                <th scope="col">Started</th>
                <th scope="col">Ended</th>
                <th scope="col">Node</th>
                <th scope="col">Outcome</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((r, i) => (
                <tr key={r.id ?? i}>
                  <td>
                    <When at={r.fireAt} />
                  </td>
                  <td>
                    <When at={r.startedAt} />
                  </td>
                  <td>
                    <When at={r.endedAt} />
                  </td>
                  <td>{r.node ?? '—'}</td>
                  <td>
                    {r.outcome ?? '—'}
                    {r.error ? `: ${r.error}` : ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {runs.length === 0 && <p>No run yet.</p>}
        </section>
      )}
      <section aria-labelledby="new-schedule-title">
        <h2 id="new-schedule-title">Create or replace a schedule</h2>
        <form class="stack" onSubmit={create} aria-label="Create a schedule">
          <label for="schedule-id">Id</label>
          <input id="schedule-id" value={id} required pattern="[A-Za-z0-9_.\-]{1,64}" disabled={disabled} onInput={(e) => setId(e.currentTarget.value)} />
          <label for="schedule-definition">Definition (JSON: type, cron and timezone or intervalSeconds, http or backup, misfirePolicy, concurrentExecution, enabled)</label>
          <textarea
            id="schedule-definition"
            rows={8}
            spellcheck={false}
            value={definition}
            readOnly={disabled}
            aria-invalid={errors.length > 0 ? 'true' : undefined}
            aria-describedby={errors.length > 0 ? 'schedule-errors' : undefined}
            onInput={(e) => setDefinition(e.currentTarget.value)}
          />
          {errors.length > 0 && (
            <ul id="schedule-errors" class="field-error" role="alert">
              {errors.map((e) => (
                <li key={e}>{e}</li>
              ))}
            </ul>
          )}
          <button type="submit" disabled={disabled}>
            Save schedule
          </button>
        </form>
      </section>
    </>
  );
}
