/**
 * A steady, bounded load of runtime-API reads and writes through a load balancer, counting
 * every request that failed (a network error or an unexpected status), split by whether a
 * balancer may repeat it (GET, PUT) or not (POST).
 *
 * Each worker loops: create a session (POST), read it back (GET), write inter-request state
 * (PUT), read that (GET), with a short pause between requests, so the load stays the same
 * whatever happens to the engines (a few hundred requests a second in all).
 */

export interface LoadFailure {
  at: number;
  method: string;
  path: string;
  what: string;
}

export interface LoadCounts {
  sent: number;
  failed: number;
  /** Of `sent` and `failed`: requests a balancer may repeat (GET, PUT). */
  idempotentSent: number;
  idempotentFailed: number;
  failures: LoadFailure[];
}

export interface RunningLoad {
  /** Counts so far (a copy). */
  counts(): LoadCounts;
  /** Resets the counts (for a new phase). */
  reset(): void;
  /** Stops the workers and waits for their requests in flight. */
  stop(): Promise<LoadCounts>;
}

export function startLoad(baseUrl: string, apiKey: string, options: { workers?: number; pauseMs?: number } = {}): RunningLoad {
  const workers = options.workers ?? 6;
  const pauseMs = options.pauseMs ?? 10;
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const started = performance.now();
  let counts: LoadCounts = empty();
  let running = true;

  async function call(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, expected: number[]): Promise<unknown> {
    const idempotent = method !== 'POST';
    counts.sent++;
    if (idempotent) counts.idempotentSent++;
    let what: string;
    try {
      // fetch keeps its connections to the balancer alive, as a client would.
      const res = await fetch(`${baseUrl}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
      const text = await res.text();
      if (expected.includes(res.status)) return text ? (JSON.parse(text) as unknown) : undefined;
      what = `${res.status} ${text.slice(0, 200)}`;
    } catch (err) {
      what = `${(err as Error).name}: ${(err as Error).message}`;
    }
    counts.failed++;
    if (idempotent) counts.idempotentFailed++;
    counts.failures.push({ at: Math.round(performance.now() - started), method, path, what });
    return undefined;
  }

  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, pauseMs));

  async function worker(n: number): Promise<void> {
    let i = 0;
    while (running) {
      i++;
      const created = (await call('POST', '/runtime/v1/sessions', { subject: `load-${n}`, attributes: { i } }, [201])) as { id?: string } | undefined;
      await pause();
      if (created?.id && running) {
        await call('GET', `/runtime/v1/sessions/${created.id}`, undefined, [200]);
        await pause();
      }
      if (!running) break;
      const failedBefore = counts.failed;
      await call('PUT', `/runtime/v1/state/load-${n}-${i % 50}`, { value: { i }, ttlSeconds: 300 }, [200, 204]);
      await pause();
      if (!running) break;
      // Read back only what was written (a failed write is counted once, not twice).
      if (counts.failed === failedBefore) {
        await call('GET', `/runtime/v1/state/load-${n}-${i % 50}`, undefined, [200]);
        await pause();
      }
    }
  }

  const done = Promise.all(Array.from({ length: workers }, (_, n) => worker(n)));
  return {
    counts: () => ({ ...counts, failures: [...counts.failures] }),
    reset: () => {
      counts = empty();
    },
    async stop() {
      running = false;
      await done;
      // Node's fetch keeps connections alive in the background; none stays after the test.
      return { ...counts, failures: [...counts.failures] };
    },
  };
}

function empty(): LoadCounts {
  return { sent: 0, failed: 0, idempotentSent: 0, idempotentFailed: 0, failures: [] };
}
