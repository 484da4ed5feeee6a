import { KEYS, envVarName, type KeyDef } from './schema.js';

/** One row of the configuration reference table in docs/configuration.md. */
export function referenceRow(def: KeyDef): string {
  const dflt = def.default === undefined ? '*required*' : def.default === '' ? '(empty)' : `\`${def.default}\``;
  const cells = [`\`${def.key}\``, def.type, dflt, def.unit || '—', `${def.doc} Allowed: ${def.allowed}. Env: \`${envVarName(def)}\`.`];
  return `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
}

/** The whole reference, one table per section, as printed by `npm run docs:config`. */
export function renderConfigReference(): string {
  const out: string[] = [];
  for (const section of [...new Set(KEYS.map((k) => k.section))]) {
    out.push(`### [${section}]`, '', '| key | type | default | unit | meaning |', '| --- | --- | --- | --- | --- |');
    for (const def of KEYS.filter((k) => k.section === section)) out.push(referenceRow(def));
    out.push('');
  }
  return out.join('\n');
}
