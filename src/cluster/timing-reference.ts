import { PROFILES as PROFILE_NAMES, TIMING_OVERRIDES } from '../config/schema.js';
import { PROFILES } from './timing.js';

/**
 * The timing profiles as a Markdown table (one row per overridable key, one column per
 * profile) for docs/configuration.md; a unit test checks the document holds it.
 */
export function renderTimingProfiles(): string {
  const out = [
    '### Timing profiles',
    '',
    'What each `[cluster] profile` sets; any key set in the file (or its environment variable) overrides it.',
    '',
    `| key | unit | ${PROFILE_NAMES.join(' | ')} |`,
    `| --- | --- | ${PROFILE_NAMES.map(() => '---').join(' | ')} |`,
  ];
  for (const t of TIMING_OVERRIDES) out.push(`| \`${t.key}\` | ${t.unit || '—'} | ${PROFILE_NAMES.map((p) => String(PROFILES[p][t.field])).join(' | ')} |`);
  return out.join('\n');
}
