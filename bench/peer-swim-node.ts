/**
 * The peer of bench/membership.ts: one node of happn-swim (a SWIM gossip library for Node.js:
 * UDP, direct and indirect probes, suspicion with a fixed timeout, no Lifeguard, no
 * connection hints, no encryption), configured with the same probe interval, probe timeout,
 * indirect-check count and minimum suspicion timeout as the Cohort profile it is compared with.
 *
 * It prints member changes as JSON lines shaped like a Cohort node's log lines
 * (`{time, msg, member, to}`), so the bench measures both the same way.
 *
 * Usage: node dist/bench/peer-swim-node.js HOST:PORT SEED_HOST:PORT|- INTERVAL PING_TIMEOUT SUSPECT_TIMEOUT
 */
import { createRequire } from 'node:module';

interface SwimMember {
  host: string;
  state: number;
}

interface SwimInstance {
  bootstrap(hosts: string[], callback: (err?: Error) => void): void;
  members(): SwimMember[];
  on(event: string, listener: (update: SwimMember) => void): void;
  membership: { suspectTimeout: number };
}

type SwimConstructor = new (opts: Record<string, unknown>) => SwimInstance;

const Swim = createRequire(import.meta.url)('happn-swim') as SwimConstructor;
const [host, seed, interval, pingTimeout, suspectTimeout] = process.argv.slice(2);
if (!host || !seed || !interval || !pingTimeout || !suspectTimeout) {
  process.stderr.write('usage: peer-swim-node HOST:PORT SEED|- INTERVAL PING_TIMEOUT SUSPECT_TIMEOUT\n');
  process.exit(2);
}

const STATES = ['alive', 'suspect', 'dead'] as const;
const print = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ time: Date.now(), ...line })}\n`);
};

const swim = new Swim({
  local: { host },
  interval: Number(interval),
  pingTimeout: Number(pingTimeout),
  // The indirect probes get the same time as the direct one, as in a Cohort node.
  pingReqTimeout: Number(pingTimeout),
  pingReqGroupSize: 3,
  joinTimeout: 1000,
});
// The library does not pass its suspectTimeout option on; set it where it is read.
swim.membership.suspectTimeout = Number(suspectTimeout);

const report = (m: SwimMember): void => {
  const to = STATES[m.state] ?? 'unknown';
  print({ msg: `member ${m.host} is ${to}`, member: m.host, to });
};
swim.on('change', report);
swim.on('update', (m) => {
  if (m.host !== host) report(m);
});
swim.bootstrap(seed === '-' ? [] : [seed], (err) => {
  if (err) {
    process.stderr.write(`peer-swim-node ${host}: ${err.message}\n`);
    process.exit(1);
  }
  for (const m of swim.members()) report(m);
  print({ msg: `peer ${host} started` });
});
