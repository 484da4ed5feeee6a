/**
 * What the console adds to the configuration sections (policy/config-sections.ts): which are
 * written through their own API, the error for an unknown name, validation that refuses a save
 * with every place the document is wrong (nothing is stored), and the audit summary of a change.
 */
import { CohortError } from '../core/errors.js';
import { CONFIG_SECTIONS, isConfigSection, sectionErrors, type ConfigSection } from '../policy/config-sections.js';

/** Sections written through their own API, never by PUT on the section. */
export const MANAGED_SECTIONS: Partial<Record<ConfigSection, string>> = {
  'api-keys': '/admin/v1/api-keys',
  schedules: '/admin/v1/schedules',
};

/** The section named `section`; CONSOLE_SECTION_UNKNOWN otherwise. */
export function configSection(section: string): ConfigSection {
  if (!isConfigSection(section)) {
    throw new CohortError('CONSOLE_SECTION_UNKNOWN', `no configuration section ${JSON.stringify(section)}; sections: ${CONFIG_SECTIONS.join(', ')}`);
  }
  return section;
}

/** Throws CONSOLE_DOCUMENT_INVALID, listing every place `content` breaks the section's schema. */
export function validateSection(section: ConfigSection, content: unknown): void {
  const errors = sectionErrors(section, content);
  if (errors.length === 0) return;
  throw new CohortError('CONSOLE_DOCUMENT_INVALID', `the ${section} document is not valid: ${errors.join('; ')}`, { section, errors });
}

/** A one-line summary of what changed between two versions of a section, for the audit. */
export function summarizeChange(section: ConfigSection, before: unknown, after: unknown): string {
  if (before === undefined) return `${section}: first version`;
  const a = (before ?? {}) as Record<string, unknown>;
  const b = (after ?? {}) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const changed = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  if (changed.length === 0) return `${section}: saved unchanged`;
  const parts = changed.map((k) => (!(k in a) ? `added ${k}` : !(k in b) ? `removed ${k}` : `changed ${k}`));
  return `${section}: ${parts.join(', ')}`;
}
