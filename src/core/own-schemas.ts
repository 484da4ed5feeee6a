/**
 * Ajv options for the JSON Schemas written in this code base (route schemas, configuration
 * sections, schedules): they are not checked against the JSON Schema meta-schema when a node
 * compiles them. Ajv compiles the meta-schema once per instance before it can check anything,
 * and that took about 100 ms of CPU per instance — a tenth of what starting an engine costs,
 * two tenths of a console — to check schemas that are constants of the code. They are checked
 * where they change, in the tests (test/unit/own-schemas.test.ts checks every route, section
 * and schedule schema against the meta-schema). Nothing a user sends or configures is a schema:
 * user input is what these schemas validate, and that validation is unchanged.
 */
export const OWN_SCHEMA_OPTIONS = { validateSchema: false } as const;
