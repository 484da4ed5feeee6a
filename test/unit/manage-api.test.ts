/**
 * The management API's open liveness route (container health checks and orchestrators' probes
 * have no management credential) and its drain route (a pre-stop hook's `cohort drain`), and
 * how the CLI finds a node: `COHORT_CONFIG_FILE` in place of `-c`, a wildcard-bound listener
 * called on loopback.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { Command } from 'commander';
import { buildNodeConfig } from '../../src/config/node-config.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import { MANAGE_LIVE_PATH, registerManageApi, type ClusterOperations } from '../../src/node/manage-api.js';
import { CONFIG_FILE_ENV, configOption } from '../../src/cli/config-option.js';
import { listenerUrl } from '../../src/cli/node-http.js';
import { configText, TEST_SECRET } from '../helpers/node-config.js';

const CREDENTIAL = 'credential-credential';

function nodeConfig(http: Record<string, string> = {}, role = 'engine') {
  const text = configText({
    node: { id: 'engine-1', role },
    cluster: { id: 'c', secret_key: TEST_SECRET, bind: '127.0.0.1:8020' },
    http: { drain_seconds: '2.5', ...http },
  });
  return buildNodeConfig(parseConfigText(text, '/etc/cohort/node.ini'), '/etc/cohort/node.ini', {});
}

function operations(drained: number[]): ClusterOperations {
  const unused = (): never => {
    throw new Error('unused');
  };
  return { info: unused, deleteNode: unused, stopCluster: unused, drain: async () => (drained.push(1), 2500) };
}

describe('the management API', () => {
  it('answers GET /health/live without the management credential, and nothing else without it', async (t) => {
    const app = Fastify();
    t.after(() => app.close());
    registerManageApi(app, nodeConfig(), CREDENTIAL, operations([]));
    const live = await app.inject({ method: 'GET', url: MANAGE_LIVE_PATH });
    assert.equal(live.statusCode, 200);
    assert.deepEqual(live.json(), { status: 'live' });
    assert.equal(MANAGE_LIVE_PATH, '/health/live', 'the same path as the engines\' runtime listener');
    assert.equal((await app.inject({ method: 'GET', url: '/manage/v1/node' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'POST', url: '/manage/v1/drain' })).statusCode, 401);
  });

  it('POST /manage/v1/drain drains the node and answers with the time drained', async (t) => {
    const app = Fastify();
    t.after(() => app.close());
    const drained: number[] = [];
    registerManageApi(app, nodeConfig(), CREDENTIAL, operations(drained));
    const answer = await app.inject({ method: 'POST', url: '/manage/v1/drain', headers: { authorization: `Bearer ${CREDENTIAL}` } });
    assert.equal(answer.statusCode, 200);
    assert.deepEqual(answer.json(), { drained: true, drainMs: 2500 });
    assert.equal(drained.length, 1);
  });
});

describe('how the CLI finds a node', () => {
  const parse = async (argv: string[], env: Record<string, string | undefined>): Promise<string | Error> => {
    const saved = process.env[CONFIG_FILE_ENV];
    if (env[CONFIG_FILE_ENV] === undefined) delete process.env[CONFIG_FILE_ENV];
    else process.env[CONFIG_FILE_ENV] = env[CONFIG_FILE_ENV];
    try {
      let got = '';
      const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
      program.command('info').addOption(configOption('node configuration file')).action((opts: { config: string }) => {
        got = opts.config;
      });
      await program.parseAsync(['node', 'cohort', ...argv]);
      return got;
    } catch (err) {
      return err as Error;
    } finally {
      if (saved === undefined) delete process.env[CONFIG_FILE_ENV];
      else process.env[CONFIG_FILE_ENV] = saved;
    }
  };

  it('-c names the file; without it COHORT_CONFIG_FILE does; with neither the command is refused', async () => {
    assert.equal(await parse(['info', '-c', '/a.ini'], { [CONFIG_FILE_ENV]: '/b.ini' }), '/a.ini');
    assert.equal(await parse(['info'], { [CONFIG_FILE_ENV]: '/b.ini' }), '/b.ini');
    const refused = await parse(['info'], {});
    assert.ok(refused instanceof Error && /required option '-c, --config <file>'/.test(refused.message));
  });

  it('calls a listener bound to every interface on loopback, and others at their address', () => {
    assert.equal(listenerUrl(nodeConfig({ manage: '0.0.0.0:9100' }), 'manage'), 'http://127.0.0.1:9100');
    assert.equal(listenerUrl(nodeConfig({ manage: '[::]:9100' }), 'manage'), 'http://[::1]:9100');
    assert.equal(listenerUrl(nodeConfig({ manage: '10.1.2.3:9100' }), 'manage'), 'http://10.1.2.3:9100');
  });
});
