import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** Root of the package (tests run from dist/test/..., three levels below it). */
export const PACKAGE_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** The compiled CLI entry, as `npx cohort` runs it. */
export const CLI_ENTRY = resolve(PACKAGE_ROOT, 'dist/src/cli/main.js');
