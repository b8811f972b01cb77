// The built `buildkite-ecr-injector refresh` as two real processes (two replicas) against the local
// Kubernetes API and the local ECR/STS endpoint: one leads through the Lease and is the only one that
// writes; SIGTERM makes it exit 0 within its grace period and release the Lease, and the standby takes
// over at once and restores a deleted Secret. Also: usage errors exit 64, a bad config exits 1.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { builtCli, repositoryRoot } from '../helpers/serve-process.js';
import { until } from '../helpers/https-client.js';
import { freePort, getText } from '../helpers/plain-http.js';
import { EAST, LEASE, LEASES, NAMESPACES, OPTED_IN, REFRESHER_NAMESPACE, STATIC_KEY, namespace, secretsOf, startRefresherCluster } from '../helpers/refresher-cluster.js';

interface RefreshProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  healthPort(): number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function startRefresh(t: Test, args: string[], env: NodeJS.ProcessEnv): RefreshProcess {
  const child = spawn(process.execPath, [builtCli, 'refresh', ...args], { cwd: repositoryRoot, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const healthPort = () => Number(/"port":(\d+),"msg":"health listening"/.exec(stdout)?.[1] ?? NaN);
  return { child, stdout: () => stdout, stderr: () => stderr, healthPort, exited };
}

async function get(port: number, path: string): Promise<{ status: number; json: unknown }> {
  const { status, text } = await getText(port, path);
  return { status, json: JSON.parse(text) as unknown };
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

t.test('two replicas, one writer; SIGTERM exits within the grace period and hands the Lease over', async (t) => {
  const c = await startRefresherCluster(t, { namespaces: [namespace('team-a', OPTED_IN), namespace('team-b', OPTED_IN)] });
  const dir = t.testdir({ 'config.yaml': `defaults: {pullSecret: ecr-credentials}\npullSecrets:\n  registries:\n    - host: ${EAST}\n` });
  const kubeconfig = (who: string) => {
    const path = join(dir, `kubeconfig-${who}`);
    return writeFile(path, c.api.kubeconfig(REFRESHER_NAMESPACE, `token-${who}`)).then(() => path);
  };
  const env = (who: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    ...c.aws.endpointEnv(),
    AWS_ACCESS_KEY_ID: STATIC_KEY,
    AWS_SECRET_ACCESS_KEY: 'static-secret',
    POD_NAMESPACE: REFRESHER_NAMESPACE,
    POD_NAME: who,
  });
  const args = async (who: string) => ['--config', join(dir, 'config.yaml'), '--kubeconfig', await kubeconfig(who), '--metrics-port', '0', '--health-port', String(await freePort()), '--metrics-host', '127.0.0.1', '--grace-period', '5'];

  const first = startRefresh(t, await args('replica-a'), env('replica-a'));
  await until(() => c.secret('team-a') !== undefined && c.secret('team-b') !== undefined, 'the first replica writes both Secrets', 20_000);
  const second = startRefresh(t, await args('replica-b'), env('replica-b'));
  await until(() => second.healthPort() > 0 && first.healthPort() > 0, 'both health listeners', 20_000);
  await until(async () => (await get(first.healthPort(), '/readyz')).status === 200, 'the leader ready after its first pass');
  t.same((await get(first.healthPort(), '/readyz')).json, { status: 'ready', leader: true });
  t.same((await get(second.healthPort(), '/readyz')).json, { status: 'ready', leader: false }, 'the standby is ready, and not leading');
  t.same((await get(second.healthPort(), '/healthz')).json, { status: 'ok' });
  t.equal(c.api.get(LEASES, LEASE)?.spec && (c.api.get(LEASES, LEASE)!.spec as { holderIdentity?: string }).holderIdentity, 'replica-a');

  // Give the standby a few election rounds, then make work for the leader.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  c.api.remove(secretsOf('team-b'), 'ecr-credentials');
  await until(() => c.secret('team-b') !== undefined, 'the leader restores the deleted Secret');
  const writers = new Set(
    c.api.requests.filter((r) => WRITES.has(r.method) && (r.path.includes('/secrets') || r.path.startsWith(NAMESPACES + '/team'))).map((r) => r.authorization),
  );
  t.same([...writers], ['Bearer token-replica-a'], 'every Secret and Namespace write came from the leader');
  t.ok(c.api.requests.some((r) => r.authorization === 'Bearer token-replica-b' && r.path.startsWith(LEASES)), 'the standby took part in the election');

  const signalled = Date.now();
  first.child.kill('SIGTERM');
  const exit = await first.exited;
  t.equal(exit.code, 0, `exit code 0 (signal ${exit.signal}); stderr: ${first.stderr()}`);
  t.ok(exit.at - signalled < 5_000, `exited within the grace period (${exit.at - signalled} ms)`);
  t.match(first.stdout(), /"msg":"refresher stopped"/);
  const afterRelease = c.api.get(LEASES, LEASE)!.spec as { holderIdentity?: string };
  t.not(afterRelease.holderIdentity, 'replica-a', 'the Lease was released');

  await until(() => (c.api.get(LEASES, LEASE)!.spec as { holderIdentity?: string }).holderIdentity === 'replica-b', 'the standby takes over', 5_000);
  t.ok(Date.now() - exit.at < 5_000, 'without waiting out the 15 s lease');
  c.api.remove(secretsOf('team-a'), 'ecr-credentials');
  await until(() => c.secret('team-a') !== undefined, 'the new leader restores a deleted Secret', 10_000);
  const lastWrite = c.api.requests.filter((r) => WRITES.has(r.method) && r.path === secretsOf('team-a')).at(-1);
  t.equal(lastWrite?.authorization, 'Bearer token-replica-b', 'written by the new leader');

  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0);
});

t.test('refresh: usage errors exit 64, a bad config exits 1, each in one line', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'pullSecrets:\n  registries:\n    - host: docker.io\n' });
  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [builtCli, 'refresh', ...args], { cwd: repositoryRoot, env: { PATH: process.env.PATH, ...env } });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
  const [noNamespace, noCluster, badFlag, badConfig] = await Promise.all([
    run([], {}),
    run([], { POD_NAMESPACE: 'x' }),
    run(['--health-port', 'many'], { POD_NAMESPACE: 'x' }),
    run(['--config', join(dir, 'bad.yaml')], { POD_NAMESPACE: 'x' }),
  ]);
  t.equal(noNamespace.code, 64);
  t.match(noNamespace.stderr, /^buildkite-ecr-injector: refresh needs POD_NAMESPACE/);
  t.equal(noCluster.code, 64);
  t.match(noCluster.stderr, /refresh needs the Kubernetes API: run in a Pod or pass --kubeconfig FILE/);
  t.equal(badFlag.code, 64);
  t.match(badFlag.stderr, /--health-port must be an integer from 0 to 65535, got many/);
  t.equal(badConfig.code, 1);
  t.match(badConfig.stderr, /invalid config file .*bad\.yaml:\n\s+pullSecrets\.registries\.0\.host: must be an ECR registry host/);
  t.notMatch(badConfig.stderr, /\n\s+at /, 'no stack trace');
});
