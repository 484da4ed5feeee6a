import { Option } from 'commander';

/**
 * The environment variable that names the node configuration file when `-c` is not given. A
 * container image sets it once, and its entry point (`cohort start`), its health check
 * (`cohort health`) and an operator's `cohort cluster info` inside the container all find the
 * same file without repeating the path.
 */
export const CONFIG_FILE_ENV = 'COHORT_CONFIG_FILE';

/** `-c, --config <file>`, required unless COHORT_CONFIG_FILE names the file. */
export function configOption(description: string): Option {
  return new Option('-c, --config <file>', description).env(CONFIG_FILE_ENV).makeOptionMandatory();
}
