/** The job types on their own: http (2xx or failure), purge-expired, config-backup (a real repository, a real directory). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openRepository } from '../../src/repository/open-repository.js';
import { runJob } from '../../src/scheduler/jobs.js';
import { parseSchedule } from '../../src/scheduler/schedule-definition.js';
import { tmpDir } from '../helpers/tmp.js';

describe('scheduler job types', () => {
  it('http succeeds on 2xx with the schedule headers and fails otherwise; purge-expired asks the engines; config-backup writes the configuration', async (t) => {
    const seen: Array<Record<string, string | string[] | undefined>> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(req.url === '/fail' ? 503 : 204).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const dir = tmpDir(t);
    const repo = await openRepository(`sqlite:${join(dir, 'r.db')}`);
    t.after(() => repo.close());
    let purged = 0;
    const ctx = { repository: repo, nodeId: 'engine-7', purgeExpired: async () => (purged += 42) };

    assert.match(await runJob(parseSchedule({ id: 'h', intervalSeconds: 5, type: 'http', http: { url: `${base}/ok` } }), 123, ctx), /204/);
    assert.equal(seen[0]!['x-cohort-schedule'], 'h');
    assert.equal(seen[0]!['x-cohort-fire-at'], '123');
    assert.equal(seen[0]!['x-cohort-node'], 'engine-7');
    await assert.rejects(runJob(parseSchedule({ id: 'h', intervalSeconds: 5, type: 'http', http: { url: `${base}/fail` } }), 1, ctx), /answered 503/);

    assert.match(await runJob(parseSchedule({ id: 'p', intervalSeconds: 5, type: 'purge-expired' }), 1, ctx), /42 expired records removed/);

    await repo.saveConfigDocument({ section: 'runtime', content: { defaultRateLimit: { capacity: 1, refillPerSecond: 1 } }, author: 'a', node: 'n', summary: 's' });
    const backups = join(dir, 'backups');
    await runJob(parseSchedule({ id: 'b', intervalSeconds: 5, type: 'config-backup', backup: { directory: backups } }), Date.UTC(2026, 11, 2), ctx);
    const [file] = readdirSync(backups);
    assert.match(file!, /^cohort-config-v1-2026-12-02T00-00-00-000Z\.json$/);
    const archive = JSON.parse(readFileSync(join(backups, file!), 'utf8')) as { version: number; sections: Record<string, { content: unknown }> };
    assert.equal(archive.version, 1);
    assert.deepEqual(archive.sections.runtime!.content, { defaultRateLimit: { capacity: 1, refillPerSecond: 1 } });
  });
});
