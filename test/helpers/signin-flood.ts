/**
 * A flood of admin sign-ins with made-up user names, run as a process of its own (so the test
 * that measures a real sign-in meanwhile does not share an event loop with the load):
 * `node signin-flood.js BASE_URL TOTAL IN_FLIGHT`. Even-numbered requests come from 127.0.0.2,
 * the others from 100 addresses 127.0.1.1 to 127.0.1.100. Prints `answered N` every 100
 * answers and, at the end, one line `done {json}` with the answers counted by status and code.
 */
import { Agent, request } from 'node:http';

const [base = '', totalText = '2000', inFlightText = '64'] = process.argv.slice(2);
const total = Number(totalText);
const inFlight = Number(inFlightText);
const agents = new Map<string, Agent>();

function agentFrom(localAddress: string): Agent {
  let agent = agents.get(localAddress);
  if (!agent) agents.set(localAddress, (agent = new Agent({ keepAlive: true, maxSockets: 16, localAddress })));
  return agent;
}

function signIn(from: string, user: string): Promise<string> {
  const payload = JSON.stringify({ user, password: 'whatever' });
  return new Promise((resolve) => {
    const req = request(new URL('/admin/v1/login', base), { method: 'POST', agent: agentFrom(from), headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let code = '';
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '';
        } catch {
          code = 'not JSON';
        }
        resolve(`${res.statusCode} ${code}`);
      });
    });
    req.on('error', (err) => resolve(`error ${err.message}`));
    req.end(payload);
  });
}

const counts: Record<string, number> = {};
let next = 0;
let answered = 0;
async function worker(): Promise<void> {
  while (next < total) {
    const i = next++;
    const key = await signIn(i % 2 === 0 ? '127.0.0.2' : `127.0.1.${1 + (i % 100)}`, `made-up-${i}-${Math.random().toString(36).slice(2, 8)}`);
    counts[key] = (counts[key] ?? 0) + 1;
    if (++answered % 100 === 0) process.stdout.write(`answered ${answered}\n`);
  }
}

await Promise.all(Array.from({ length: inFlight }, worker));
for (const agent of agents.values()) agent.destroy();
process.stdout.write(`done ${JSON.stringify(counts)}\n`);
