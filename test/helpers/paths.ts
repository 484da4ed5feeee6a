import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** Root of the package (tests run from dist/test/..., three levels below it). */
export const PACKAGE_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** The CLI as `npx cohort` runs it: the package's bin, the bundle scripts/build.mjs makes. */
export const CLI_ENTRY = resolve(PACKAGE_ROOT, 'dist/src/cli/cohort.js');
