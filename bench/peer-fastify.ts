/**
 * The peer of bench/runtime.ts and bench/access.ts: bare Fastify routes, no authentication, no
 * state — the ceiling an HTTP API on this machine can reach. `GET /runtime/v1/sessions/:id`
 * answers a session-sized JSON body; `/authz/forward` (any method) answers 200 with an empty
 * body, as an allowing forward-auth decision does.
 *
 * Usage: node dist/bench/peer-fastify.js PORT [SESSION_FILE]
 *   SESSION_FILE: a session as an engine answered it (JSON), which the session route answers
 *   instead of its small built-in one, so that both send bodies of the same size.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { keepTickObjectShape } from '../src/node/tick-object-shape.js';

// As every Cohort node does first (node/tick-object-shape.ts): a peer that idles between its
// rows would otherwise fall onto V8's slow path for Node's nextTick records and be measured
// slower than it is.
keepTickObjectShape();

const port = Number(process.argv[2]);
const sessionFile = process.argv[3];
const app = Fastify({ logger: false });
const body: unknown = sessionFile ? JSON.parse(readFileSync(sessionFile, 'utf8')) : {
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
app.all('/authz/forward', async (_request, reply) => reply.code(200).send());
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`${JSON.stringify({ msg: 'peer started' })}\n`);
