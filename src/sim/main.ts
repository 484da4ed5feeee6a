#!/usr/bin/env node
/**
 * `npm run sim -- [--scenario NAME] [--nodes N] [--seed S] [--profile lan|wan|local] [--trials T] [--svg FILE]`
 *
 * Scenarios: scale (default: a sweep of cluster sizes up to --nodes), crash, pause, cut,
 * blocked, steady, mixed (membership), grid, grid-failed-write, grid-large-record and
 * grid-lifecycle (the replicated state grid under faults, sim/grid-chaos.ts; --nodes
 * defaults to 5 there). Prints detection-time percentiles, false positives and messages per
 * node per second. Every run is reproducible from its seed. With --svg, the scale sweep also
 * writes its figures as a chart (docs/sim-scale.svg is made this way).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { percentile } from '../core/stats.js';
import { PROFILES as PROFILE_NAMES, type Profile } from '../config/schema.js';
import { renderCharts } from './plot.js';
import { gridChaos, type GridWorkload } from './grid-chaos.js';
import { blockedNode, detection, mixedFaults, steady } from './scenarios.js';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'scale' },
    nodes: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    profile: { type: 'string', default: 'lan' },
    trials: { type: 'string', default: '20' },
    svg: { type: 'string' },
  },
});
const nodes = Number(values.nodes);
const seed = Number(values.seed);
const trials = Number(values.trials);
const profile = values.profile as Profile;
if (!(PROFILE_NAMES as readonly string[]).includes(profile) || !Number.isInteger(nodes) || nodes < 3 || !Number.isInteger(seed) || !Number.isInteger(trials) || trials < 1) {
  process.stderr.write('usage: npm run sim -- [--scenario scale|crash|pause|cut|blocked|steady|mixed|grid|grid-failed-write|grid-large-record|grid-lifecycle] [--nodes N>=3] [--seed S] [--profile lan|wan|local] [--trials T]\n');
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

interface ScaleRow {
  n: number;
  rate: number;
  crashP99: number;
  silentP50: number;
  silentP99: number;
}

/**
 * Two panels: messages per node per second (should be flat), and detection times beside a
 * curve proportional to log10 N through the smallest cluster's silent p50 (detection should
 * grow no faster than it).
 */
function scaleChart(rows: ScaleRow[]): string {
  const xs = rows.map((r) => r.n);
  const s = (ms: number): number => ms / 1000;
  const first = rows[0]!;
  const logRef = rows.map((r) => s(first.silentP50) * (Math.log10(r.n) / Math.log10(first.n)));
  const yMax = Math.ceil(Math.max(...rows.map((r) => s(r.silentP99)), ...logRef) / 2) * 2;
  return renderCharts([
    {
      title: `Messages per node per second (${profile}, seed ${seed})`,
      xLabel: 'nodes (log scale)',
      yLabel: 'messages / node / s',
      xs,
      series: [{ name: 'messages sent per node per second', ys: rows.map((r) => r.rate), color: '#1f77b4' }],
      yMax: Math.max(4, Math.ceil(Math.max(...rows.map((r) => r.rate)))),
      yStep: 1,
    },
    {
      title: `Detection time (${profile}, seed ${seed})`,
      xLabel: 'nodes (log scale)',
      yLabel: 'seconds until every node agrees',
      xs,
      series: [
        { name: 'silent node p50', ys: rows.map((r) => s(r.silentP50)), color: '#2ca02c' },
        { name: 'silent node p99', ys: rows.map((r) => s(r.silentP99)), color: '#d62728' },
        { name: 'crashed process p99', ys: rows.map((r) => s(r.crashP99)), color: '#9467bd' },
        { name: 'proportional to log10 N', ys: logRef, color: '#7f7f7f', dashed: true },
      ],
      yMax,
      yStep: 2,
    },
  ]);
}

switch (values.scenario) {
  case 'scale': {
    const sizes = [10, 30, 100, 300, 1000, 3000].filter((n) => n <= nodes);
    if (!sizes.includes(nodes)) sizes.push(nodes);
    console.log(`profile ${profile}, seed ${seed}; detection = every live node lists the victim inactive`);
    console.log('| nodes | messages/node/s | crash p50 | crash p99 | silent p50 | silent p99 | false positives | trials |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    const rows: ScaleRow[] = [];
    for (const n of sizes) {
      // Fewer trials for the largest clusters keep the sweep to a few minutes.
      const t = n >= 1000 ? Math.min(trials, 5) : n >= 300 ? Math.min(trials, 10) : trials;
      const rate = steady({ nodes: n, seed, profile }, 20_000);
      const crash = detectionRow(n, 'crash', t);
      const silent = detectionRow(n, 'pause', t);
      console.log(`| ${n} | ${rate.messagesPerNodePerSecond.toFixed(2)} | ${fmt(crash.p50)} | ${fmt(crash.p99)} | ${fmt(silent.p50)} | ${fmt(silent.p99)} | ${rate.falsePositives + crash.falsePositives + silent.falsePositives} | ${t} |`);
      rows.push({ n, rate: rate.messagesPerNodePerSecond, crashP99: crash.p99, silentP50: silent.p50, silentP99: silent.p99 });
    }
    if (values.svg) {
      writeFileSync(values.svg, scaleChart(rows));
      console.log(`chart written to ${values.svg}`);
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
  case 'grid':
  case 'grid-failed-write':
  case 'grid-large-record':
  case 'grid-lifecycle': {
    const gridNodes = values.nodes === '1000' ? 5 : nodes;
    const workload = values.scenario === 'grid' ? 'mixed' : (values.scenario!.slice('grid-'.length) as GridWorkload);
    let failed = 0;
    for (let s = seed; s < seed + trials; s++) {
      const r = await gridChaos({ seed: s, nodes: gridNodes, workload });
      if (r.violations.length > 0) failed++;
      console.log(`seed ${s}: ${r.violations.length === 0 ? 'ok' : r.violations.join(' / ')} (acknowledged: ${r.acknowledged.sessions} sessions, ${r.acknowledged.revocations} revocations, ${r.acknowledged.replayIds} replay ids; failed writes ${r.failedWrites}${workload === 'lifecycle' ? `; ${r.acknowledged.logouts} logouts; joins ${r.lifecycle.joins}, graceful restarts ${r.lifecycle.gracefulRestarts}, crash restarts ${r.lifecycle.crashRestarts}, saved states loaded ${r.lifecycle.savedStatesLoaded}` : ''})${r.violations.length > 0 ? `\n  faults: ${r.faults.join(', ')}` : ''}`);
    }
    console.log(`grid under faults (${workload}), ${gridNodes} engines, seeds ${seed}..${seed + trials - 1}: ${trials - failed} passed, ${failed} failed`);
    process.exitCode = failed > 0 ? 1 : 0;
    break;
  }
  default:
    process.stderr.write(`unknown scenario ${values.scenario}\n`);
    process.exit(2);
}
