/**
 * The front-door example `cohort up` prints (a `curl` and the answer it got), read from its
 * output and pasted into a shell as a newcomer would, with Debian's curl.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const CURL = process.env.COHORT_TEST_CURL ?? '/usr/bin/curl';
const run = promisify(execFile);

/** The printed command and the answer printed under it. */
export function printedExample(stdout: string): { command: string; status: number; reason: string } {
  const m = /^ {2}front door {2}(curl .+)\n {14}answers (\d{3}) (ACCESS_[A-Z_]+)/m.exec(stdout);
  assert.ok(m, `a front-door example in:\n${stdout}`);
  return { command: m[1]!, status: Number(m[2]), reason: m[3]! };
}

/** Runs `command` in a shell, as someone who pasted it would; the status and X-Cohort-Reason of the answer. */
export async function pasteCurl(command: string): Promise<{ status: number; reason: string | undefined }> {
  assert.ok(command.startsWith('curl '), command);
  const { stdout } = await run('/bin/sh', ['-c', `${CURL}${command.slice('curl'.length)} --silent --max-time 5`]);
  const status = /^HTTP\/[\d.]+ (\d{3})/m.exec(stdout);
  assert.ok(status, stdout);
  return { status: Number(status[1]), reason: /^x-cohort-reason: *(\S+)/im.exec(stdout)?.[1] };
}
