/**
 * The nginx configuration of docs/behind-a-proxy.md is the template the nginx end-to-end test
 * runs (nginxServerBlock), rendered with the guide's example values: the tested text and the
 * printed text cannot drift apart.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nginxServerBlock } from '../../src/engine/access/nginx-config.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

describe('docs/behind-a-proxy.md', () => {
  it('prints the nginx server block the end-to-end test runs', () => {
    const doc = readFileSync(join(PACKAGE_ROOT, 'docs', 'behind-a-proxy.md'), 'utf8');
    const rendered = nginxServerBlock({ listen: '80', upstream: 'http://127.0.0.1:3000', cohort: 'http://127.0.0.1:7400', gatewayKey: '<gateway key>' });
    assert.ok(doc.includes('```nginx\n' + rendered + '```'), 'the guide\'s nginx block is nginxServerBlock() with the example values');
  });

  it('is linked from the README and docs/operations.md', () => {
    assert.match(readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8'), /\(docs\/behind-a-proxy\.md\)/);
    assert.match(readFileSync(join(PACKAGE_ROOT, 'docs', 'operations.md'), 'utf8'), /\(behind-a-proxy\.md\)/);
  });
});
