import type { FastifyInstance } from 'fastify';
import { COHORT_VERSION } from '../core/version.js';
import type { NodeConfig } from '../config/node-config.js';
import type { ClusterInfo } from '../cluster/cluster-info.js';
import type { Member } from '../cluster/member-list.js';
import { requireBearer, sha256 } from '../http/bearer-auth.js';
import { CohortError } from '../core/errors.js';

/** What the management API may ask of the node's cluster membership. */
export interface ClusterOperations {
  info(): ClusterInfo;
  /** Throws CLUSTER_NODE_ACTIVE or CLUSTER_NODE_UNKNOWN. */
  deleteNode(address: string): Member;
  stopCluster(): void;
  /** `cohort replica promote`: present on console and replica nodes. */
  promote?(force: boolean): Promise<{ epoch: number }>;
  /** `cohort schedules list|runs`: present on nodes with the repository. */
  schedules?: {
    list(): Promise<unknown[]>;
    runs(id: string, limit: number): Promise<unknown[]>;
  };
  /** `GET /metrics` (absent with `[http] metrics = false`). */
  metrics?: { text(): Promise<string>; contentType: string };
}

const METRICS_PATH = '/metrics';

const nullableString = { type: ['string', 'null'] };

const clusterInfoSchema = {
  type: 'object',
  properties: {
    clusterId: { type: 'string' },
    node: { type: 'string' },
    mixedVersions: { type: 'boolean' },
    versions: { type: 'array', items: { type: 'string' } },
    clockSkewMs: { type: 'integer' },
    clockSkewWarning: { type: 'boolean' },
    nodes: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: nullableString,
          address: { type: 'string' },
          role: nullableString,
          version: nullableString,
          state: { type: 'string' },
          group: nullableString,
          clockOffsetMs: { type: ['integer', 'null'] },
          self: { type: 'boolean' },
          writes: { type: 'string', enum: ['accepted', 'refused'] },
          runtime: { type: 'string' },
        },
      },
    },
  },
} as const;

/**
 * The management API the CLI talks to. Every route needs the node's management credential
 * (written to the data directory at first start), so only someone who can read that
 * directory can drive the node.
 */
export function registerManageApi(app: FastifyInstance, config: NodeConfig, credential: string, cluster: ClusterOperations): void {
  const expected = sha256(credential);
  const metricsTokenHash = config.http.metricsToken ? sha256(config.http.metricsToken.reveal()) : undefined;
  app.addHook('onRequest', async (request) => {
    // Prometheus has no management credential: the metrics take `[http] metrics_token`, or
    // nothing (a manage port on loopback or a management network).
    if (request.routeOptions.url === METRICS_PATH && cluster.metrics) {
      if (metricsTokenHash) requireBearer(request, metricsTokenHash);
      return;
    }
    requireBearer(request, expected);
  });

  if (cluster.metrics) {
    const metrics = cluster.metrics;
    app.get(METRICS_PATH, async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  }

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

  app.get('/manage/v1/cluster', { schema: { response: { 200: clusterInfoSchema } } }, async () => cluster.info());

  app.delete<{ Params: { address: string } }>('/manage/v1/cluster/nodes/:address', {
    schema: {
      params: { type: 'object', properties: { address: { type: 'string', minLength: 3, maxLength: 300 } }, required: ['address'] },
      response: { 200: { type: 'object', properties: { deleted: { type: 'object', properties: { id: { type: 'string' }, address: { type: 'string' } } } } } },
    },
  }, async (request) => {
    const m = cluster.deleteNode(request.params.address);
    return { deleted: { id: m.id, address: m.address } };
  });

  app.post<{ Body: { force?: boolean } }>('/manage/v1/replica/promote', {
    schema: { body: { type: 'object', additionalProperties: false, properties: { force: { type: 'boolean' } } } },
  }, async (request) => {
    if (!cluster.promote) throw new CohortError('CONSOLE_PROMOTE_REFUSED', `${config.node.id} is an ${config.node.role}, not a replica`);
    return cluster.promote(request.body.force === true);
  });

  const noSchedules = (): never => {
    throw new CohortError('SCHEDULE_NOT_FOUND', `${config.node.id} has no repository, so no schedules: ask the console`);
  };
  app.get('/manage/v1/schedules', async () => ({ schedules: cluster.schedules ? await cluster.schedules.list() : noSchedules() }));
  app.get<{ Params: { id: string } }>('/manage/v1/schedules/:id/runs', {
    schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } },
  }, async (request) => ({ runs: cluster.schedules ? await cluster.schedules.runs(request.params.id, 100) : noSchedules() }));

  // The answer goes out first; then the stop spreads and this node stops with the others.
  // ('close' fires whether or not the client stayed to read the answer.)
  app.post('/manage/v1/cluster/stop', async (_request, reply) => {
    reply.raw.once('close', () => setImmediate(() => cluster.stopCluster()));
    return reply.code(202).send({ stopping: true });
  });
}
