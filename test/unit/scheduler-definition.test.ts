import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isCohortError } from '../../src/core/errors.js';
import { definitionHash, MISFIRE_THRESHOLD_MS, nextFireAt, parseSchedule, planClaim, recoveredFireAt } from '../../src/scheduler/schedule-definition.js';
import { schedulerState } from '../../src/scheduler/scheduler.js';
import type { SchedulerJob } from '../../src/repository/repository.js';

const T0 = Date.UTC(2026, 11, 2, 12, 0, 0);

describe('schedules: validation', () => {
  it('fills in the defaults of a valid schedule', () => {
    const def = parseSchedule({ id: 'ping', intervalSeconds: 60, type: 'http', http: { url: 'http://127.0.0.1:1/x' } });
    assert.deepEqual(def, {
      id: 'ping', enabled: true, intervalSeconds: 60, timezone: 'UTC', type: 'http', concurrentExecution: false, misfirePolicy: 'fire-and-proceed',
      http: { method: 'POST', url: 'http://127.0.0.1:1/x', timeoutMs: 10_000 },
    });
    assert.equal(definitionHash(def), definitionHash({ ...def }));
    assert.notEqual(definitionHash(def), definitionHash({ ...def, intervalSeconds: 30 }));
  });

  const refused: Array<[string, unknown, RegExp]> = [
    ['bad cron', { id: 'a', cron: 'every minute please', type: 'purge-expired' }, /\/cron: "every minute please" is not a cron expression/],
    ['cron with a field out of range', { id: 'a', cron: '61 * * * *', type: 'purge-expired' }, /\/cron/],
    ['unknown type', { id: 'a', intervalSeconds: 5, type: 'email' }, /\/type: must be equal to one of the allowed values/],
    ['missing URL', { id: 'a', intervalSeconds: 5, type: 'http' }, /an http schedule needs http.url/],
    ['URL without a scheme', { id: 'a', intervalSeconds: 5, type: 'http', http: { url: 'example.com/x' } }, /\/http\/url/],
    ['both cron and interval', { id: 'a', cron: '* * * * *', intervalSeconds: 5, type: 'purge-expired' }, /exactly one of cron and intervalSeconds/],
    ['neither', { id: 'a', type: 'purge-expired' }, /exactly one of cron and intervalSeconds/],
    ['unknown time zone', { id: 'a', cron: '0 3 * * *', timezone: 'Mars/Olympus', type: 'purge-expired' }, /not an IANA time zone/],
    ['backup without a directory', { id: 'a', intervalSeconds: 5, type: 'config-backup' }, /backup.directory/],
    ['unknown field', { id: 'a', intervalSeconds: 5, type: 'purge-expired', colour: 'red' }, /unknown field "colour"/],
    ['bad misfire policy', { id: 'a', intervalSeconds: 5, type: 'purge-expired', misfirePolicy: 'retry' }, /misfirePolicy/],
    ['bad id', { id: 'a b', intervalSeconds: 5, type: 'purge-expired' }, /\/id/],
  ];
  for (const [name, raw, message] of refused) {
    it(`refuses: ${name}`, () => {
      assert.throws(() => parseSchedule(raw), (err) => isCohortError(err, 'SCHEDULE_INVALID') && message.test(err.message));
    });
  }
});

describe('schedules: fire times and misfires', () => {
  it('aligns intervals on multiples since the epoch, strictly after the given time', () => {
    const every10 = parseSchedule({ id: 'x', intervalSeconds: 10, type: 'purge-expired' });
    assert.equal(nextFireAt(every10, T0), T0 + 10_000);
    assert.equal(nextFireAt(every10, T0 + 1), T0 + 10_000);
    assert.equal(nextFireAt(every10, T0 + 9_999), T0 + 10_000);
  });

  it('follows cron expressions in their time zone, with seconds when six fields are given', () => {
    const daily = parseSchedule({ id: 'x', cron: '0 3 * * *', timezone: 'Europe/Paris', type: 'purge-expired' });
    // 03:00 in Paris on 3 December (UTC+1) is 02:00 UTC.
    assert.equal(new Date(nextFireAt(daily, T0)).toISOString(), '2026-12-03T02:00:00.000Z');
    const secs = parseSchedule({ id: 'x', cron: '*/15 * * * * *', type: 'purge-expired' });
    assert.equal(nextFireAt(secs, T0), T0 + 15_000);
  });

  it('runs a late fire time once and carries on from now (fire-and-proceed), or skips it (do-nothing)', () => {
    const proceed = parseSchedule({ id: 'x', intervalSeconds: 1, type: 'purge-expired' });
    const skip = { ...proceed, misfirePolicy: 'do-nothing' as const };
    assert.deepEqual(planClaim(proceed, T0, T0 + 100), { fire: true, nextFireAt: T0 + 1000, concurrent: false });
    const late = T0 + MISFIRE_THRESHOLD_MS + 5_500;
    assert.deepEqual(planClaim(proceed, T0, late), { fire: true, nextFireAt: T0 + 7000, concurrent: false }, 'no catching up of every missed second');
    assert.deepEqual(planClaim(skip, T0, late), { fire: false, nextFireAt: T0 + 7000, concurrent: false });
    assert.equal(planClaim(skip, T0, T0 + 100).fire, true, 'on time: runs');
  });

  it('takes back a claim that never started at its own time, and a started run by its misfire policy', () => {
    const def = parseSchedule({ id: 'x', intervalSeconds: 60, type: 'purge-expired' });
    const job: SchedulerJob = { scheduleId: 'x', definitionHash: 'h', nextFireAt: T0 + 60_000, state: 'claimed', node: 'n1', token: 7, fireAt: T0, claimedAt: T0, startedAt: null };
    assert.equal(recoveredFireAt(def, job, T0 + 40_000), T0, 'unstarted: fires again');
    assert.equal(recoveredFireAt(def, { ...job, state: 'running' }, T0 + 40_000), T0, 'fire-and-proceed: its own fire time, due at once');
    assert.equal(recoveredFireAt({ ...def, misfirePolicy: 'do-nothing' }, { ...job, state: 'running' }, T0 + 40_000), T0 + 60_000, 'do-nothing: the next fire time');
  });

  it('tells running, recovering and down apart by the age of the check-in', () => {
    const s = { instanceTimeoutMs: 30_000, instanceRecoveryTimeoutMs: 30_000 };
    const at = (age: number) => schedulerState({ node: 'n', at: T0 - age, periodMs: 5000 }, T0, s);
    assert.deepEqual([at(0), at(30_000), at(30_001), at(60_000), at(60_001)], ['running', 'running', 'recovering', 'recovering', 'down']);
  });
});
