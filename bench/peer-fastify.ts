/**
 * The peer of bench/runtime.ts: a bare Fastify route answering a session-sized JSON body,
 * no authentication, no state — the ceiling an HTTP API on this machine can reach.
 *
 * Usage: node dist/bench/peer-fastify.js PORT
 */
import Fastify from 'fastify';

const port = Number(process.argv[2]);
const app = Fastify({ logger: false });
const body = {
  id: '17.abcdefghijklmnopqrstuvwxyz012345',
  subject: 'user-1',
  attributes: { role: 'member' },
  createdAt: new Date(0).toISOString(),
  lastAccessAt: new Date(0).toISOString(),
  expiresAt: new Date(0).toISOString(),
  idleTimeoutSeconds: 1800,
  maxLifetimeSeconds: 28800,
};
app.get('/runtime/v1/sessions/:id', async () => body);
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`${JSON.stringify({ msg: 'peer started' })}\n`);
