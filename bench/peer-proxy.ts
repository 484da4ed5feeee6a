/**
 * The peer of bench/access.ts's inline row: the same Node proxy Cohort's inline mode uses
 * (Fastify with @fastify/reply-from, no retries, bodies streamed), forwarding every request
 * to the upstream without any decision: what proxying alone costs in Node on this machine.
 *
 * Usage: node dist/bench/peer-proxy.js PORT UPSTREAM_URL
 */
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';
import { keepTickObjectShape } from '../src/node/tick-object-shape.js';

// As every Cohort node does first (node/tick-object-shape.ts): see bench/peer-fastify.ts.
keepTickObjectShape();

const port = Number(process.argv[2]);
const upstream = process.argv[3]!;
const app = Fastify({ logger: false });
await app.register(replyFrom, { disableRequestLogging: true, retryMethods: [] });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
app.route({
  method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
  url: '*',
  exposeHeadRoute: false,
  handler: (request, reply) => reply.from(`${upstream}${request.url}`),
});
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`${JSON.stringify({ msg: 'peer started' })}\n`);
