#!/usr/bin/env node
/**
 * `npm run sim -- [--scenario NAME] [--nodes N] [--seed S] [--profile lan|wan|local] [--trials T]`
 *
 * Scenarios: scale (default: a sweep of cluster sizes up to --nodes), crash, pause, cut,
 * blocked, steady, mixed. Prints detection-time percentiles, false positives and messages per
 * node per second. Every run is reproducible from its seed.
 */
import { parseArgs } from 'node:util';
import { percentile } from '../core/stats.js';
import { PROFILES as PROFILE_NAMES, type Profile } from '../config/schema.js';
import { blockedNode, detection, mixedFaults, steady } from './scenarios.js';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'scale' },
    nodes: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    profile: { type: 'string', default: 'lan' },
    trials: { type: 'string', default: '20' },
  },
});
const nodes = Number(values.nodes);
const seed = Number(values.seed);
const trials = Number(values.trials);
const profile = values.profile as Profile;
if (!(PROFILE_NAMES as readonly string[]).includes(profile) || !Number.isInteger(nodes) || nodes < 3 || !Number.isInteger(seed) || !Number.isInteger(trials) || trials < 1) {
  process.stderr.write('usage: npm run sim -- [--scenario scale|crash|pause|cut|blocked|steady|mixed] [--nodes N>=3] [--seed S] [--profile lan|wan|local] [--trials T]\n');
  process.exit(2);
}

const fmt = (ms: number | undefined): string => (ms === undefined || Number.isNaN(ms) ? '—' : `${(ms / 1000).toFixed(2)} s`);

function detectionRow(n: number, kind: 'crash' | 'pause' | 'cut', count: number): { p50: number; p99: number; missed: number; falsePositives: number } {
  const results = Array.from({ length: count }, (_, i) => detection({ nodes: n, seed: seed + i, profile }, kind));
  const times = results.map((r) => r.allMs).filter((t): t is number => t !== undefined);
  return {
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    missed: results.length - times.length,
    falsePositives: results.reduce((s, r) => s + r.falsePositives, 0),
  };
}

switch (values.scenario) {
  case 'scale': {
    const sizes = [10, 30, 100, 300, 1000, 3000].filter((n) => n <= nodes);
    if (!sizes.includes(nodes)) sizes.push(nodes);
    console.log(`profile ${profile}, seed ${seed}; detection = every live node lists the victim inactive`);
    console.log('| nodes | messages/node/s | crash p50 | crash p99 | silent p50 | silent p99 | false positives | trials |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const n of sizes) {
      // Fewer trials for the largest clusters keep the sweep to a few minutes.
      const t = n >= 1000 ? Math.min(trials, 5) : n >= 300 ? Math.min(trials, 10) : trials;
      const rate = steady({ nodes: n, seed, profile }, 20_000);
      const crash = detectionRow(n, 'crash', t);
      const silent = detectionRow(n, 'pause', t);
      console.log(`| ${n} | ${rate.messagesPerNodePerSecond.toFixed(2)} | ${fmt(crash.p50)} | ${fmt(crash.p99)} | ${fmt(silent.p50)} | ${fmt(silent.p99)} | ${rate.falsePositives + crash.falsePositives + silent.falsePositives} | ${t} |`);
    }
    break;
  }
  case 'crash':
  case 'pause':
  case 'cut': {
    const r = detectionRow(nodes, values.scenario, trials);
    console.log(`${values.scenario} detection, ${nodes} nodes, ${profile}, ${trials} trials from seed ${seed}: p50 ${fmt(r.p50)}, p99 ${fmt(r.p99)}, undetected ${r.missed}, false positives ${r.falsePositives}`);
    break;
  }
  case 'blocked': {
    const r = blockedNode({ nodes, seed, profile }, 600_000);
    console.log(`one node blocked 400 ms every 2 s for 10 min, ${nodes} nodes, ${profile}: false positives ${r.falsePositives}, suspicions ${r.suspicions}`);
    break;
  }
  case 'steady': {
    const r = steady({ nodes, seed, profile }, 60_000);
    console.log(`steady state, ${nodes} nodes, ${profile}: ${r.messagesPerNodePerSecond.toFixed(2)} messages/node/s, false positives ${r.falsePositives}`);
    break;
  }
  case 'mixed': {
    let failed = 0;
    for (let s = seed; s < seed + trials; s++) {
      const r = mixedFaults({ nodes, seed: s, profile });
      if (r.violations.length > 0) {
        failed++;
        console.log(`seed ${s}: ${r.violations.join(' / ')}\n  faults: ${r.faults.join(', ')}`);
      }
    }
    console.log(`mixed faults, ${nodes} nodes, ${profile}, seeds ${seed}..${seed + trials - 1}: ${trials - failed} passed, ${failed} failed`);
    process.exitCode = failed > 0 ? 1 : 0;
    break;
  }
  default:
    process.stderr.write(`unknown scenario ${values.scenario}\n`);
    process.exit(2);
}
