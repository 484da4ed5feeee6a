import assert from 'node:assert/strict';

/** Awaits a request that must fail (refused connection, TLS failure): returns its error code, or fails the test with the answer. */
export async function refused(request: Promise<unknown>): Promise<string> {
  try {
    const answer = await request;
    assert.fail(`expected the request to be refused, got ${JSON.stringify(answer)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}
