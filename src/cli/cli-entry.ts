import { fileURLToPath } from 'node:url';

/**
 * The file that runs the `cohort` command: the bundle of the CLI (built beside the compiled
 * modules by scripts/build.mjs, and named as the package's bin). `cohort up` starts its nodes
 * with it. Inside the bundle, import.meta.url is the bundle's file that holds this module (the
 * entry or one of its chunks, all in this folder); in the file-by-file output (what tests
 * import) it is this module, in the same folder.
 */
export const CLI_ENTRY = fileURLToPath(new URL('./cohort.js', import.meta.url));
