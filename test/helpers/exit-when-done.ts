/**
 * For test files whose clients of outside servers (ioredis) could outlive the file: once the
 * file's last hook has run, the process should exit by itself. One that does not (something
 * still holds the event loop: in one full run the Redis Cluster file ran all its tests and then
 * stayed alive, with no socket open, until the runner's 300 s limit failed it without a word of
 * why; not reproduced alone or three at a time beside busy loops) is ended after `graceMs` with
 * the exit status its tests gave, and says what held it (process.getActiveResourcesInfo), loudly,
 * so the leak can be found. Call it at the file's top level after its other `after` hooks.
 */
import { after } from 'node:test';

export function exitWhenDone(file: string, graceMs = 20_000): void {
  after(() => {
    const timer = setTimeout(() => {
      process.stderr.write(`\n*** ${file}: every test and hook has run, but the process was still held open ${graceMs / 1000} s later by: ${process.getActiveResourcesInfo().join(', ')}; ending it ***\n\n`);
      process.exit(process.exitCode ?? 0);
    }, graceMs);
    timer.unref();
  });
}
