/**
 * The Dockerfile and the Kubernetes manifests of deploy/kubernetes, checked against the code
 * (no container runtime or cluster is needed): every node configuration in the ConfigMap is
 * loaded as the node loads it, with each container's environment; probes name listeners the
 * node binds and routes those listeners serve, answering as the probes expect; environment
 * variables are ones the node or its CLI reads; the user is not root; the pre-stop drain and
 * the grace period agree with `[http] drain_seconds`; the disruption budget keeps a majority.
 *
 * The manifests are read with a small reader of the YAML subset they are written in
 * (test/helpers/yaml-subset.ts), which refuses anything outside it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Command } from 'commander';
import Fastify from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { buildNodeConfig, type NodeConfig } from '../../src/config/node-config.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import { KEYS, envVarName, isWildcardHost } from '../../src/config/schema.js';
import { CONFIG_FILE_ENV } from '../../src/cli/config-option.js';
import { registerDrain } from '../../src/cli/commands/drain.js';
import { registerHealth } from '../../src/cli/commands/health.js';
import { registerStart } from '../../src/cli/commands/start.js';
import { membershipTiming } from '../../src/node/cluster-member.js';
import { FINISH_REQUESTS_MS } from '../../src/node/cohort-node.js';
import { registerManageApi } from '../../src/node/manage-api.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { parseYamlDocuments, YamlSubsetError, type YamlValue } from '../helpers/yaml-subset.js';

/** Time allowed, on top of the drain and the requests in flight, for saving a large grid state and handing partitions off (docs/deployment.md). */
const SAVE_AND_HANDOFF_ALLOWANCE_S = 30;
/** Environment variables Node.js itself reads, allowed beside the node's own. */
const NODE_RUNTIME_ENV = new Set(['NODE_OPTIONS']);

const KUBERNETES_DIR = join(PACKAGE_ROOT, 'deploy', 'kubernetes');
const KUSTOMIZATION = 'kustomization.yaml';
/** The example Secret: applied by nobody as it is, so left out of the kustomization. */
const SECRET_EXAMPLE = 'secret.example.yaml';
const read = (path: string): string => readFileSync(join(PACKAGE_ROOT, path), 'utf8');

// ---------------------------------------------------------------- typed views of the YAML

type Obj = { [key: string]: YamlValue };
const obj = (v: YamlValue | undefined, what: string): Obj => {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} should be a mapping`);
  return v as Obj;
};
const list = (v: YamlValue | undefined, what: string): YamlValue[] => {
  if (v === undefined) return [];
  assert.ok(Array.isArray(v), `${what} should be a sequence`);
  return v;
};
const str = (v: YamlValue | undefined, what: string): string => {
  assert.equal(typeof v, 'string', `${what} should be a string`);
  return v as string;
};
const num = (v: YamlValue | undefined, what: string): number => {
  assert.equal(typeof v, 'number', `${what} should be a number`);
  return v as number;
};

interface Resource {
  file: string;
  kind: string;
  name: string;
  doc: Obj;
}

function loadManifests(): Resource[] {
  return readdirSync(KUBERNETES_DIR)
    .filter((f) => f.endsWith('.yaml') && f !== KUSTOMIZATION)
    .sort()
    .flatMap((file) =>
      parseYamlDocuments(readFileSync(join(KUBERNETES_DIR, file), 'utf8'), file).map((value) => {
        const doc = obj(value, file);
        return { file, kind: str(doc.kind, `${file}: kind`), name: str(obj(doc.metadata, `${file}: metadata`).name, `${file}: metadata.name`), doc };
      }),
    );
}

const manifests = loadManifests();
const one = (kind: string, name: string): Resource => {
  const found = manifests.filter((r) => r.kind === kind && r.name === name);
  assert.equal(found.length, 1, `one ${kind} named ${name}`);
  return found[0]!;
};

const secret = one('Secret', 'cohort-secrets');
const secretValues = obj(secret.doc.stringData, 'Secret stringData');
const configMap = one('ConfigMap', 'cohort-config');
const configFiles = obj(configMap.doc.data, 'ConfigMap data');

interface Workload {
  resource: Resource;
  role: 'console' | 'engine';
  spec: Obj;
  podSpec: Obj;
  podLabels: Obj;
  container: Obj;
  replicas: number;
}

function workload(kind: string, name: string, role: Workload['role']): Workload {
  const resource = one(kind, name);
  const spec = obj(resource.doc.spec, `${name}: spec`);
  const template = obj(spec.template, `${name}: template`);
  const podSpec = obj(template.spec, `${name}: pod spec`);
  const containers = list(podSpec.containers, `${name}: containers`);
  assert.equal(containers.length, 1, `${name}: one container`);
  return {
    resource,
    role,
    spec,
    podSpec,
    podLabels: obj(obj(template.metadata, `${name}: template metadata`).labels, `${name}: pod labels`),
    container: obj(containers[0], `${name}: container`),
    replicas: num(spec.replicas, `${name}: replicas`),
  };
}

const consoleWorkload = workload('Deployment', 'cohort-console', 'console');
const engines = workload('StatefulSet', 'cohort-engine', 'engine');
const workloads = [consoleWorkload, engines];

/** The pod name a workload's pods get (for `metadata.name`), as an example. */
const examplePodName = (w: Workload): string => (w.resource.kind === 'StatefulSet' ? `${w.resource.name}-1` : `${w.resource.name}-7c9d8b6f5d-x2k4q`);

/**
 * The container's environment as the kubelet builds it: literal values with `$(NAME)`
 * replaced by earlier variables, fields of the pod, and the example Secret's values.
 */
function containerEnv(w: Workload): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list(w.container.env, 'env')) {
    const e = obj(item, 'env entry');
    const name = str(e.name, 'env name');
    assert.ok(!(name in env), `${name} is set twice`);
    if (e.value !== undefined) {
      env[name] = str(e.value, name).replace(/\$\(([A-Z0-9_]+)\)/g, (_m, ref: string) => {
        assert.ok(ref in env, `${name} refers to $(${ref}), which is not set before it (the kubelet would leave it as it is)`);
        return env[ref]!;
      });
      continue;
    }
    const from = obj(e.valueFrom, `${name}: valueFrom`);
    if (from.fieldRef) {
      const path = str(obj(from.fieldRef, name).fieldPath, `${name}: fieldPath`);
      const fields: Record<string, string> = { 'metadata.name': examplePodName(w), 'metadata.namespace': 'identity', 'status.podIP': '10.42.0.17' };
      assert.ok(path in fields, `${name}: fieldPath ${path} is not one this test knows`);
      env[name] = fields[path]!;
    } else {
      const ref = obj(from.secretKeyRef, `${name}: secretKeyRef`);
      assert.equal(ref.name, secret.name, `${name} comes from the Secret ${secret.name}`);
      const key = str(ref.key, `${name}: key`);
      // Optional or not, every key is in the example, which documents them all.
      assert.ok(key in secretValues, `${name}: the Secret has no key ${key}`);
      env[name] = str(secretValues[key], key);
    }
  }
  return env;
}

/** The ConfigMap key mounted at `path` in the container, if any. */
function configMapKeyAt(w: Workload, path: string): string | undefined {
  const volumes = new Map(list(w.podSpec.volumes, 'volumes').map((v) => [str(obj(v, 'volume').name, 'volume name'), obj(v, 'volume')]));
  for (const m of list(w.container.volumeMounts, 'volumeMounts')) {
    const mount = obj(m, 'volumeMount');
    const mountPath = str(mount.mountPath, 'mountPath');
    const volume = volumes.get(str(mount.name, 'mount name'));
    if (!volume?.configMap || !path.startsWith(`${mountPath}/`)) continue;
    assert.equal(obj(volume.configMap, 'configMap').name, configMap.name);
    return posix.relative(mountPath, path);
  }
  return undefined;
}

/** The node configuration of a workload's pod, loaded as `cohort start` loads it. */
function nodeConfigOf(w: Workload): { config: NodeConfig; env: Record<string, string> } {
  const env = containerEnv(w);
  const file = env[CONFIG_FILE_ENV];
  assert.ok(file, `${w.resource.name}: ${CONFIG_FILE_ENV} names the configuration file`);
  const key = configMapKeyAt(w, file);
  assert.ok(key !== undefined && key in configFiles, `${w.resource.name}: ${file} is a file of the ConfigMap ${configMap.name}`);
  const text = str(configFiles[key], key);
  const config = buildNodeConfig(parseConfigText(text, file), file, env);
  membershipTiming(config);
  return { config, env };
}

function containerPorts(w: Workload): Map<string, number> {
  return new Map(list(w.container.ports, 'ports').map((p) => [str(obj(p, 'port').name, 'port name'), num(obj(p, 'port').containerPort, 'containerPort')]));
}

function probe(w: Workload, name: string): { path: string; port: string; periodSeconds: number; failureThreshold: number } {
  const p = obj(w.container[name], `${w.resource.name}: ${name}`);
  const get = obj(p.httpGet, `${w.resource.name}: ${name}.httpGet`);
  return {
    path: str(get.path, `${name} path`),
    port: str(get.port, `${name} port (by name)`),
    periodSeconds: typeof p.periodSeconds === 'number' ? p.periodSeconds : 10,
    failureThreshold: typeof p.failureThreshold === 'number' ? p.failureThreshold : 3,
  };
}

const matches = (selector: Obj, labels: Obj): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

// ---------------------------------------------------------------- the Dockerfile

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

function dockerInstructions(): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of read('Dockerfile').split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = '';
    const [keyword, ...rest] = full.split(/\s+/);
    if (keyword!.toUpperCase() === 'FROM') stage++;
    out.push({ keyword: keyword!.toUpperCase(), args: rest.join(' '), stage });
  }
  return out;
}

const docker = dockerInstructions();
const finalStage = Math.max(...docker.map((i) => i.stage));
const inFinal = (keyword: string): Instruction[] => docker.filter((i) => i.stage === finalStage && i.keyword === keyword);
const jsonArgs = (i: Instruction): string[] => JSON.parse(i.args.replace(/^CMD\s+/, '')) as string[];
const packageJson = JSON.parse(read('package.json')) as { version: string; bin: { cohort: string } };

describe('the YAML subset reader', () => {
  it('reads the forms the manifests use and refuses what it does not know', () => {
    assert.deepEqual(parseYamlDocuments('a: 1\nb:\n  - x\n  - c: "q#"  # note\n    d: [a, \'b\']\ne: |\n  one\n\n  two\nf: {}\n---\n# only a comment\n---\ng: ~\n'), [
      { a: 1, b: ['x', { c: 'q#', d: ['a', 'b'] }], e: 'one\n\ntwo\n', f: {} },
      { g: null },
    ]);
    for (const bad of ['a: &x 1', 'a: *x', 'a: !!str 1', 'a: >\n  folded', 'a: 1\na: 2', 'a:\n\t- x', 'a: "open', 'a: b: c', 'a: {b: 1}']) {
      assert.throws(() => parseYamlDocuments(bad), YamlSubsetError, bad);
    }
  });
});

describe('the Dockerfile', () => {
  it('builds with every dependency and keeps only production dependencies and dist/ in the image it runs', () => {
    assert.ok(finalStage >= 1, 'at least two stages');
    const build = docker.filter((i) => i.stage < finalStage && i.keyword === 'RUN').map((i) => i.args).join('\n');
    assert.match(build, /npm ci\b(?![^\n]*--omit=dev)/, 'the build stage installs the dev dependencies (TypeScript, Vite)');
    assert.match(build, /node scripts\/build\.mjs/);
    assert.match(build, /npm prune --omit=dev/, 'and drops them before the runtime stage copies node_modules');
    const copied = inFinal('COPY').map((i) => {
      const m = /^--from=(\S+)\s+(\S+)\s+(\S+)$/.exec(i.args);
      assert.ok(m, `every COPY of the runtime stage comes from the build stage: ${i.args}`);
      return m[2]!.replace(/^\/build\//, '');
    });
    assert.deepEqual(copied.sort(), ['dist/src', 'dist/web', 'node_modules', 'package.json']);
    const bin = inFinal('RUN').map((i) => i.args).join('\n');
    assert.ok(bin.includes(`/opt/cohort/${packageJson.bin.cohort} /usr/local/bin/cohort`), 'the cohort command is the package\'s bin');
  });

  it('runs as a non-root user with a numeric id, which the manifests run as too', () => {
    const users = inFinal('USER');
    assert.equal(users.length, 1);
    const [uid, gid] = users[0]!.args.split(':').map(Number);
    assert.ok(uid! > 0 && gid! > 0, 'not root');
    for (const w of workloads) {
      const security = obj(w.podSpec.securityContext, `${w.resource.name}: securityContext`);
      assert.equal(security.runAsNonRoot, true);
      assert.equal(security.runAsUser, uid);
      assert.equal(security.runAsGroup, gid);
      assert.equal(security.fsGroup, gid, 'volumes writable by that group');
      assert.equal(obj(w.container.securityContext, 'container securityContext').allowPrivilegeEscalation, false);
    }
  });

  it('starts `cohort start` with the file named by COHORT_CONFIG_FILE, checks health with `cohort health`, and exposes the default ports', () => {
    const program = new Command();
    registerStart(program);
    registerHealth(program);
    registerDrain(program);
    const commands = program.commands.map((c) => c.name());
    const [entry] = inFinal('ENTRYPOINT');
    assert.deepEqual(jsonArgs(entry!), ['cohort', 'start']);
    assert.ok(commands.includes('start'));
    const env = inFinal('ENV').map((i) => i.args).join(' ');
    assert.match(env, new RegExp(`\\b${CONFIG_FILE_ENV}=/etc/cohort/\\S+\\.ini\\b`));
    const [health] = inFinal('HEALTHCHECK');
    const cmd = JSON.parse(/CMD\s+(\[.*\])$/.exec(health!.args)![1]!) as string[];
    assert.deepEqual(cmd.slice(0, 2), ['cohort', 'health']);
    assert.ok(commands.includes('health') && commands.includes('drain'));
    assert.equal(inFinal('STOPSIGNAL')[0]?.args, 'SIGTERM', 'the graceful stop');
    const exposed = new Set(inFinal('EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number)));
    for (const w of workloads) for (const port of containerPorts(w).values()) assert.ok(exposed.has(port), `${port} is exposed`);
  });

  it('.dockerignore keeps installed and built output and version control out of the build context', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const entry of ['node_modules', 'dist', '.git']) assert.ok(ignored.includes(entry), `${entry} is ignored`);
    for (const needed of ['src', 'web', 'scripts', 'package.json', 'package-lock.json', 'tsconfig.json']) assert.ok(!ignored.includes(needed), `${needed} is needed by the build`);
  });
});

describe('the Kubernetes manifests', () => {
  it('kustomization.yaml lists every manifest but the example Secret', () => {
    const [kustomization] = parseYamlDocuments(readFileSync(join(KUBERNETES_DIR, KUSTOMIZATION), 'utf8'), KUSTOMIZATION);
    const resources = list(obj(kustomization, KUSTOMIZATION).resources, 'resources').map((r) => str(r, 'resource'));
    const files = [...new Set(manifests.map((r) => r.file))].filter((f) => f !== SECRET_EXAMPLE);
    assert.deepEqual([...resources].sort(), files.sort());
    assert.equal(secret.file, SECRET_EXAMPLE);
  });

  it('load as valid node configurations, every key from the ConfigMap a key of the schema, with the role of their workload', () => {
    for (const w of workloads) {
      const { config } = nodeConfigOf(w);
      assert.equal(config.node.role, w.role);
      assert.ok(config.node.dataDir.startsWith('/'), 'an absolute data directory');
    }
    for (const [name, text] of Object.entries(configFiles)) {
      for (const [section, keys] of parseConfigText(str(text, name), name)) {
        for (const key of keys.keys()) assert.ok(KEYS.some((k) => k.section === section && k.key === key), `${name}: [${section}] ${key} is a key of the schema`);
      }
    }
  });

  it('set only environment variables the node, its CLI or Node.js reads', () => {
    const known = new Set([...KEYS.map(envVarName), CONFIG_FILE_ENV]);
    for (const w of workloads) {
      const entries = list(w.container.env, 'env').map((e) => obj(e, 'env'));
      const referenced = new Set(entries.flatMap((e) => [...String(e.value ?? '').matchAll(/\$\(([A-Z0-9_]+)\)/g)].map((m) => m[1]!)));
      for (const e of entries) {
        const name = str(e.name, 'env name');
        if (name.startsWith('COHORT_')) assert.ok(known.has(name), `${w.resource.name}: ${name} is not read by the node (COHORT_<SECTION>_<KEY> of a schema key, or ${CONFIG_FILE_ENV})`);
        else assert.ok(NODE_RUNTIME_ENV.has(name) || referenced.has(name), `${w.resource.name}: ${name} is neither read by Node.js nor used by another variable`);
      }
    }
  });

  it('secrets come from the Secret, never from the ConfigMap', () => {
    const secretKeys = KEYS.filter((k) => k.secret);
    for (const [name, text] of Object.entries(configFiles)) {
      for (const [section, keys] of parseConfigText(str(text, name), name)) {
        for (const key of keys.keys()) assert.ok(!secretKeys.some((k) => k.section === section && k.key === key), `${name}: [${section}] ${key} is a secret`);
      }
    }
    for (const w of workloads) {
      const fromSecret = list(w.container.env, 'env').map((e) => obj(e, 'env')).filter((e) => (e.valueFrom as Obj | undefined)?.secretKeyRef).map((e) => e.name);
      assert.ok(fromSecret.includes(envVarName({ section: 'cluster', key: 'secret_key' })), `${w.resource.name}: the cluster secret`);
    }
    const consoleSecrets = list(consoleWorkload.container.env, 'env').map((e) => obj(e, 'env').name);
    assert.ok(consoleSecrets.includes('COHORT_CONSOLE_ADMIN_PASSWORD'), 'the console\'s admin password');
    assert.ok(list(engines.container.env, 'env').some((e) => obj(e, 'env').name === 'COHORT_HTTP_API_KEYS'), 'the engines\' API keys');
  });

  it('expose the ports the node listens on, and probe routes its listeners serve', async (t) => {
    for (const w of workloads) {
      const { config } = nodeConfigOf(w);
      const ports = containerPorts(w);
      const listeners: Record<string, { host: string; port: number } | undefined> = {
        cluster: config.cluster.bind,
        manage: config.http.manage,
        ...(w.role === 'engine' ? { runtime: config.http.runtime } : { admin: config.http.admin }),
      };
      for (const [name, port] of ports) {
        const address = listeners[name];
        assert.ok(address, `${w.resource.name}: port ${name} is a listener of a ${w.role}`);
        assert.equal(port, address.port, `${w.resource.name}: port ${name}`);
        assert.ok(isWildcardHost(address.host), `${w.resource.name}: ${name} listens on the pod's address (${address.host})`);
      }
      for (const name of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const p = probe(w, name);
        assert.ok(ports.has(p.port), `${w.resource.name}: ${name} port ${p.port} is a container port`);
        const app = await probedApp(t, w.role, p.port);
        const answer = await app.inject({ method: 'GET', url: p.path });
        assert.equal(answer.statusCode, 200, `${w.resource.name}: ${name} GET ${p.path} on ${p.port} answers 200 without a credential`);
      }
    }
    // The engines' readiness is the route that turns 503 while an engine is not ready or drains.
    const ready = probe(engines, 'readinessProbe');
    const draining = await probedApp(t, 'engine', ready.port, ['stopping']);
    assert.equal((await draining.inject({ method: 'GET', url: ready.path })).statusCode, 503);
    assert.equal(probe(engines, 'livenessProbe').path, '/health/live');
  });

  it('drain before the stop, within a grace period that covers the drain, the wait for clients to close their connections, the requests in flight and the save', () => {
    const { config } = nodeConfigOf(engines);
    const drainSeconds = config.http.drainMs / 1000;
    const preStop = obj(obj(obj(engines.container.lifecycle, 'lifecycle').preStop, 'preStop').exec, 'preStop.exec');
    assert.deepEqual(list(preStop.command, 'preStop command'), ['cohort', 'drain']);
    const grace = num(engines.podSpec.terminationGracePeriodSeconds, 'terminationGracePeriodSeconds');
    // The drain, then as long again at most for clients to close their connections (cohort-node.ts closeServingListener).
    assert.ok(grace >= 2 * drainSeconds + FINISH_REQUESTS_MS / 1000 + SAVE_AND_HANDOFF_ALLOWANCE_S, `grace ${grace} s covers 2 × drain_seconds ${drainSeconds} s + ${FINISH_REQUESTS_MS / 1000} s + ${SAVE_AND_HANDOFF_ALLOWANCE_S} s`);
    const ready = probe(engines, 'readinessProbe');
    assert.ok(ready.periodSeconds * ready.failureThreshold < drainSeconds, 'a draining engine is taken out of the Service by its readiness before the drain ends');
  });

  it('find peers through a headless Service listing every pod before it is ready, each advertising its own DNS name', () => {
    const peers = one('Service', str(engines.spec.serviceName, 'serviceName'));
    const peersSpec = obj(peers.doc.spec, 'peers spec');
    assert.equal(peersSpec.clusterIP, 'None');
    assert.equal(peersSpec.publishNotReadyAddresses, true, 'engines are ready only after they joined');
    const peersPort = num(obj(list(peersSpec.ports, 'ports')[0], 'port').port, 'peers port');
    for (const w of workloads) {
      assert.ok(matches(obj(peersSpec.selector, 'selector'), w.podLabels), `${peers.name} lists the ${w.role} pods`);
      const { config } = nodeConfigOf(w);
      assert.deepEqual(config.cluster.peers.map((p) => `${p.host}:${p.port}`), [`${peers.name}:${peersPort}`]);
      assert.equal(config.cluster.bind.port, peersPort);
      const podName = w.resource.kind === 'StatefulSet' ? examplePodName(w) : str(w.podSpec.hostname, 'hostname');
      if (w.resource.kind !== 'StatefulSet') assert.equal(w.podSpec.subdomain, peers.name, 'the console\'s name lives under the headless Service');
      assert.equal(`${config.cluster.advertise.host}:${config.cluster.advertise.port}`, `${podName}.${peers.name}.identity.svc:${peersPort}`);
    }
    assert.equal(nodeConfigOf(engines).config.node.id, examplePodName(engines), 'the engine\'s node id is its pod name');
  });

  it('route Services to container ports their pods have', () => {
    for (const service of manifests.filter((r) => r.kind === 'Service')) {
      const spec = obj(service.doc.spec, `${service.name}: spec`);
      const selected = workloads.filter((w) => matches(obj(spec.selector, 'selector'), w.podLabels));
      assert.ok(selected.length > 0, `${service.name} selects some pods`);
      for (const p of list(spec.ports, 'ports')) {
        const target = str(obj(p, 'port').targetPort, `${service.name}: targetPort (by name)`);
        for (const w of selected) assert.ok(containerPorts(w).has(target), `${service.name}: ${w.resource.name} has a port named ${target}`);
      }
    }
  });

  it('keep a majority of the engines through voluntary disruptions, and no replica set loses more than it can', () => {
    const pdb = one('PodDisruptionBudget', engines.resource.name);
    const spec = obj(pdb.doc.spec, 'pdb spec');
    assert.ok(matches(obj(obj(spec.selector, 'selector').matchLabels, 'matchLabels'), engines.podLabels), 'the budget covers the engines');
    assert.ok(!matches(obj(obj(spec.selector, 'selector').matchLabels, 'matchLabels'), consoleWorkload.podLabels), 'and only them');
    const minAvailable = num(spec.minAvailable, 'minAvailable');
    assert.equal(minAvailable, Math.floor(engines.replicas / 2) + 1, 'a majority');
    const { config } = nodeConfigOf(engines);
    assert.ok(engines.replicas - minAvailable <= config.state.replicationFactor - 1, 'at most replication_factor - 1 engines away at once');
  });

  it('keep the data directories on volumes that outlive the pods, and the console on its own', () => {
    for (const w of workloads) {
      const { config } = nodeConfigOf(w);
      const mounts = list(w.container.volumeMounts, 'volumeMounts').map((m) => obj(m, 'mount'));
      const mount = mounts.find((m) => config.node.dataDir.startsWith(`${str(m.mountPath, 'mountPath')}/`));
      assert.ok(mount, `${w.resource.name}: ${config.node.dataDir} is on a mounted volume`);
      const name = str(mount.name, 'mount name');
      if (w.resource.kind === 'StatefulSet') {
        assert.ok(list(w.spec.volumeClaimTemplates, 'volumeClaimTemplates').some((v) => obj(obj(v, 'template').metadata, 'metadata').name === name), 'a volume claim per engine');
      } else {
        const volume = list(w.podSpec.volumes, 'volumes').map((v) => obj(v, 'volume')).find((v) => v.name === name)!;
        one('PersistentVolumeClaim', str(obj(volume.persistentVolumeClaim, 'persistentVolumeClaim').claimName, 'claimName'));
        assert.equal(w.replicas, 1, 'one console');
        assert.equal(obj(w.spec.strategy, 'strategy').type, 'Recreate', 'never two consoles on one repository');
      }
    }
  });

  it('run the image of this version', () => {
    for (const w of workloads) assert.equal(w.container.image, `cohort:${packageJson.version}`);
  });
});

/**
 * The HTTP listener a probe's port names, with the node's own routes: the runtime API (an
 * engine answering as ready, or not for `notReady`) or the management API.
 */
async function probedApp(t: { after(fn: () => Promise<void>): void }, role: 'console' | 'engine', port: string, notReady: string[] = []) {
  if (port === 'runtime') {
    const { provider } = localGrid(new ManualClock(1_800_000_000_000));
    const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'runtime' });
    registerRuntimeApi(app, { provider, apiKeyHashes: [], notReadyReasons: () => notReady });
    t.after(async () => {
      await app.close();
      await provider.close();
    });
    return app;
  }
  assert.equal(port, 'manage', `a ${role} probe on ${port}: only the runtime and manage listeners serve /health routes`);
  const app = Fastify();
  const unused = (): never => {
    throw new Error('not a probe route');
  };
  const text = configText(role);
  registerManageApi(app, buildNodeConfig(parseConfigText(text, 'x.ini'), 'x.ini', {}), 'manage-credential-of-the-test', { info: unused, deleteNode: unused, stopCluster: unused, drain: unused });
  t.after(() => app.close());
  return app;
}

function configText(role: string): string {
  return `[node]\nid = n1\nrole = ${role}\n[cluster]\nid = c\nsecret_key = a-test-secret-that-is-long-enough\n`;
}

