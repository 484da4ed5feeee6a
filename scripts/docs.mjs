#!/usr/bin/env node
// Regenerates the parts of docs/ that are derived from the code: the key tables in
// docs/configuration.md and the code tables in docs/errors.md (between the GENERATED markers).
// Unit tests fail when these parts no longer match the code; run `npm run docs` to fix them.
import { readFileSync, writeFileSync } from 'node:fs';

const { renderConfigReference } = await import('../dist/src/config/reference.js');
const { renderTimingProfiles } = await import('../dist/src/cluster/timing-reference.js');
const { ERROR_CODES } = await import('../dist/src/core/errors.js');

const GROUPS = {
  CONFIG: 'Node configuration', REPO: 'Repository', TRANSPORT: 'Transport', CLUSTER: 'Cluster membership and operations', RPC: 'Requests between nodes', STATE: 'Runtime state', RUNTIME: 'Runtime API', ACCESS: 'Access decisions',
  NODE: 'Node', AUTH: 'Authentication', ENGINE: 'Engines', HTTP: 'HTTP APIs', CLI: 'Command line',
  // The inline proxy, web sign-in and token mediation belong with the decisions they serve.
  GRID: 'Runtime state', CONSOLE: 'Console and replica', SCHEDULE: 'Scheduler', ADMIN: 'Admin API',
  PROXY: 'Access decisions', LOGIN: 'Access decisions', LOGOUT: 'Access decisions', UPSTREAM: 'Access decisions',
  SECRET: 'Secrets at rest',
};

function renderErrors() {
  let out = '';
  let last = '';
  for (const [code, { status, summary }] of Object.entries(ERROR_CODES)) {
    const prefix = code.split('_')[0];
    const title = GROUPS[prefix] ?? prefix;
    if (title !== last) {
      out += `${out ? '\n' : ''}## ${title}\n\n| code | HTTP | meaning |\n| --- | --- | --- |\n`;
      last = title;
    }
    out += `| \`${code}\` | ${status} | ${summary} |\n`;
  }
  return out;
}

function replaceGenerated(file, content) {
  const text = readFileSync(file, 'utf8');
  const begin = '<!-- GENERATED: do not edit by hand; run npm run docs -->';
  const end = '<!-- END GENERATED -->';
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i < 0 || j < 0) throw new Error(`${file}: GENERATED markers not found`);
  writeFileSync(file, `${text.slice(0, i + begin.length)}\n\n${content.trim()}\n\n${text.slice(j)}`);
}

replaceGenerated('docs/configuration.md', `${renderConfigReference()}\n${renderTimingProfiles()}`);
replaceGenerated('docs/errors.md', renderErrors());
console.log('docs/configuration.md and docs/errors.md regenerated');
