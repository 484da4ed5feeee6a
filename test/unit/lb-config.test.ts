/**
 * The load-balancer configurations `cohort lb` prints (cli/lb/lb-config.ts): every engine in
 * them, timings that fit inside the engines' drain, retries limited to requests a balancer may
 * repeat, the auth_request block commented out; and, where nginx and HAProxy are installed,
 * each balancer's own configuration check accepts the file as printed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkIntervalMs, haproxyLbConfig, idleKeepAliveMs, nginxLbConfig, type LbOptions } from '../../src/cli/lb/lb-config.js';
import { lbEngines } from '../../src/cli/commands/lb.js';
import type { ClusterInfo } from '../../src/node/cluster-info.js';
import { tmpDir } from '../helpers/tmp.js';

const options: LbOptions = {
  clusterId: 'shop',
  engines: [{ id: 'engine-1', address: '127.0.0.1:9001' }, { id: 'engine-2', address: '127.0.0.1:9002' }, { id: 'engine-3', address: '127.0.0.1:9003' }],
  listen: '127.0.0.1:8080',
  drainMs: 500,
};

function installed(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

describe('cohort lb configurations', () => {
  it('timings fit inside the drain: two failed checks and the idle keep-alive end before the engine closes', () => {
    for (const drainMs of [500, 5000, 0, 60_000]) {
      const inter = checkIntervalMs(drainMs);
      assert.ok(inter >= 100 && inter <= 2000, `${drainMs}: check every ${inter} ms`);
      if (drainMs >= 500) assert.ok(2 * inter < drainMs, `${drainMs}: two checks (${2 * inter} ms) within the drain`);
      const idle = idleKeepAliveMs(drainMs);
      assert.ok(idle > 0, 'keep-alive stays on');
      if (drainMs >= 200) assert.ok(idle < drainMs, `${drainMs}: nginx ends idle connections (${idle} ms) before a stopping engine would (drain_seconds after its listener closed)`);
    }
  });

  it('nginx: every engine with passive checks, keep-alive shorter than the drain, retries on another engine, auth_request commented out, files under the prefix', () => {
    const text = nginxLbConfig(options);
    for (const e of options.engines) assert.match(text, new RegExp(`^\\s+server ${e.address} max_fails=1 fail_timeout=2s; # ${e.id}$`, 'm'));
    assert.match(text, /^\s+keepalive_timeout 250ms;$/m);
    assert.match(text, /^\s+proxy_next_upstream error timeout http_502 http_504;$/m);
    assert.doesNotMatch(text, /proxy_next_upstream [^;]*non_idempotent/, 'POSTs are never sent twice');
    assert.match(text, /^\s+listen 127\.0\.0\.1:8080;$/m);
    assert.match(text, /^pid nginx\.pid;$/m, 'the pid file relative to the prefix');
    assert.match(text, /^daemon off;$/m, 'runs in the foreground');
    assert.match(text, /^\s+# .*auth_request \/_cohort_authz;$/m, 'auth_request there, commented out');
    assert.match(text, /^\s+# .*proxy_pass http:\/\/cohort_engines\/authz\/forward;$/m, 'asking the same engines');
    assert.doesNotMatch(text.split('\n').filter((l) => !l.trim().startsWith('#')).join('\n'), /auth_request/, 'nothing of it active');
  });

  it('HAProxy: active checks on /health/ready, redispatch, L7 retries only for repeatable methods', () => {
    const text = haproxyLbConfig(options);
    for (const e of options.engines) assert.match(text, new RegExp(`^\\s+server ${e.id} ${e.address}$`, 'm'));
    assert.match(text, /^\s+option httpchk GET \/health\/ready$/m);
    assert.match(text, /^\s+http-check expect status 200$/m);
    assert.match(text, /^\s+default-server check inter 100 fastinter 100 downinter 100 fall 2 rise 2$/m);
    assert.match(text, /^\s+option redispatch 1$/m);
    assert.match(text, /^\s+http-request disable-l7-retry unless cohort_repeatable$/m);
    assert.match(text, /^\s+acl cohort_repeatable method GET HEAD PUT DELETE OPTIONS$/m);
    assert.match(text, /^\s+bind 127\.0\.0\.1:8080$/m);
  });

  it('takes every engine the cluster lists with its runtime address, in id order', () => {
    const node = (id: string, role: string, state: string, runtime?: string) => ({ id, address: `a-${id}`, role, version: '1.0.0', state, group: null, clockOffsetMs: 0, self: false, ...(runtime ? { runtime } : {}) });
    const info = { clusterId: 'c', node: 'console', mixedVersions: false, versions: ['1.0.0'], clockSkewMs: 0, clockSkewWarning: false, nodes: [
      node('console', 'console', 'active'), node('engine-10', 'engine', 'active', 'h:10'), node('engine-2', 'engine', 'inactive', 'h:2'), node('engine-3', 'engine', 'active'),
    ] } as ClusterInfo;
    assert.deepEqual(lbEngines(info), [{ id: 'engine-2', address: 'h:2' }, { id: 'engine-10', address: 'h:10' }]);
  });

  it('nginx -t and haproxy -c accept the files as printed', (t) => {
    const dir = tmpDir(t);
    let checked = 0;
    if (installed('/usr/sbin/nginx')) {
      const file = join(dir, 'nginx.conf');
      writeFileSync(file, nginxLbConfig(options));
      const r = spawnSync('/usr/sbin/nginx', ['-t', '-p', dir, '-c', file], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      checked++;
    }
    if (installed('/usr/sbin/haproxy')) {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, haproxyLbConfig(options));
      const r = spawnSync('/usr/sbin/haproxy', ['-c', '-f', file], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      checked++;
    }
    if (checked < 2) {
      if (process.env.COHORT_REQUIRE_SERVICES === '1') throw new Error('nginx and HAProxy are required (COHORT_REQUIRE_SERVICES=1)');
      process.stderr.write('\n*** nginx or HAProxy not installed: their configuration checks were skipped; set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n');
    }
  });
});
