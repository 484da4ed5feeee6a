/**
 * The upstream application of bench/access.ts's proxy rows: a plain node:http server that
 * reads each request's body and answers 200 with a two-byte body, so that the proxies in
 * front of it (Cohort's inline proxy, the same @fastify/reply-from proxy without a decision,
 * nginx) are what the rows compare.
 *
 * Usage: node dist/bench/upstream.js PORT
 */
import { createServer } from 'node:http';
import { keepTickObjectShape } from '../src/node/tick-object-shape.js';

// As every Cohort node does first (node/tick-object-shape.ts): see bench/peer-fastify.ts.
keepTickObjectShape();

const port = Number(process.argv[2]);
const server = createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    response.end('ok');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ msg: 'upstream started' })}\n`));
