import type { FastifyInstance } from 'fastify';
import { COHORT_VERSION } from '../core/version.js';
import type { NodeConfig } from '../config/node-config.js';
import { requireBearer, sha256 } from '../http/bearer-auth.js';

/**
 * The management API the CLI talks to. Every route needs the node's management credential
 * (written to the data directory at first start), so only someone who can read that
 * directory can drive the node.
 */
export function registerManageApi(app: FastifyInstance, config: NodeConfig, credential: string): void {
  const expected = sha256(credential);
  app.addHook('onRequest', async (request) => {
    requireBearer(request, expected);
  });

  app.get('/manage/v1/node', {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            role: { type: 'string' },
            version: { type: 'string' },
            mode: { type: 'string' },
            clusterId: { type: 'string' },
            pid: { type: 'integer' },
          },
        },
      },
    },
  }, async () => ({
    id: config.node.id,
    role: config.node.role,
    version: COHORT_VERSION,
    mode: config.node.mode,
    clusterId: config.cluster.id,
    pid: process.pid,
  }));
}
