import type { FastifyInstance } from 'fastify';
import { COHORT_VERSION } from '../core/version.js';
import type { NodeConfig } from '../config/node-config.js';
import type { ClusterInfo } from './cluster-info.js';
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
  /**
   * `cohort drain`: the first part of a graceful stop (an engine's readiness turns 503 and it
   * serves on for `[http] drain_seconds`); resolves, with the time drained in ms (0 for a node
   * that serves no client traffic), when that time has passed. The stop that follows does not
   * wait again.
   */
  drain(): Promise<number>;
}

const METRICS_PATH = '/metrics';
/**
 * The liveness route of every node, open like an engine's runtime `/health/live`: a container
 * health check or an orchestrator's probe has no management credential, and the console and
 * replica have no runtime listener. It says only that the process answers.
 */
export const MANAGE_LIVE_PATH = '/health/live';

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
    if (request.routeOptions.url === MANAGE_LIVE_PATH) return;
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

  app.get(MANAGE_LIVE_PATH, {
    schema: { response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['live'] } } } } },
  }, async () => ({ status: 'live' }));

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

  // Answered once the drain time has passed, so that a caller (a container's pre-stop hook)
  // can wait for it before the node is told to stop.
  app.post('/manage/v1/drain', {
    schema: { response: { 200: { type: 'object', properties: { drained: { type: 'boolean' }, drainMs: { type: 'integer' } } } } },
  }, async () => ({ drained: true, drainMs: await cluster.drain() }));

  // The answer goes out first; then the stop spreads and this node stops with the others.
  // ('close' fires whether or not the client stayed to read the answer.)
  app.post('/manage/v1/cluster/stop', async (_request, reply) => {
    reply.raw.once('close', () => setImmediate(() => cluster.stopCluster()));
    return reply.code(202).send({ stopping: true });
  });
}
