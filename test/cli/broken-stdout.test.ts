// A reader of stdout/stderr that goes away (a supervisor that exits, `serve | head`, a broken log pipe)
// must not keep the built CLI alive: its long-running commands (`serve`, `refresh`) still answer, and
// on SIGTERM exit 0 within the grace period. Before the fix, pino's sync flush at exit retried the
// EPIPE every 100 ms forever and the process ignored further signals.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { httpsRequest, until } from '../helpers/https-client.js';
import { freePort, getText } from '../helpers/plain-http.js';
import { EAST, OPTED_IN, REFRESHER_NAMESPACE, STATIC_KEY, namespace, startRefresherCluster } from '../helpers/refresher-cluster.js';
import { builtCli, repositoryRoot, startServeProcess, type ServeProcess } from '../helpers/serve-process.js';

const GRACE_SECONDS = 3;
const fixture = join(repositoryRoot, 'examples/admission-review.json');

async function exitsWithinGrace(t: Test, server: Pick<ServeProcess, 'child' | 'exited' | 'stderr'>): Promise<void> {
  const signalled = Date.now();
  server.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), GRACE_SECONDS * 1000 + 2_000).unref());
  const exit = await Promise.race([server.exited, timeout]);
  t.not(exit, 'timeout', 'the process exited after SIGTERM');
  if (exit === 'timeout') return;
  t.equal(exit.code, 0, `exit code 0 (signal ${exit.signal})`);
  t.ok(Date.now() - signalled < GRACE_SECONDS * 1000 + 1_000, `within the grace period (${Date.now() - signalled} ms)`);
}

async function localServe(t: Test): Promise<{ server: ServeProcess; ca: string }> {
  const dir = t.testdir();
  await writeFile(join(dir, 'namespaces.yaml'), await readFile(join(repositoryRoot, 'examples/namespaces.yaml')));
  const server = await startServeProcess(t, [
    '--tls-mode', 'local', '--certs-dir', join(dir, 'certs'), '--namespaces', join(dir, 'namespaces.yaml'),
    '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0', '--grace-period', String(GRACE_SECONDS),
  ]);
  return { server, ca: await readFile(join(dir, 'certs/ca.crt'), 'utf8') };
}

t.test('serve: stdout closed before SIGTERM, nothing logged in between: exits within the grace period', async (t) => {
  const { server } = await localServe(t);
  server.child.stdout.destroy();
  await exitsWithinGrace(t, server);
});

t.test('serve: stdout and stderr closed, then requests: still answered, then exits within the grace period', async (t) => {
  const { server, ca } = await localServe(t);
  server.child.stdout.destroy();
  server.child.stderr.destroy();
  const body = await readFile(fixture, 'utf8');
  // The first audit line meets the broken pipe; the ones after it are dropped without blocking.
  for (let i = 0; i < 20; i += 1) {
    const res = await httpsRequest({ port: server.port, ca, body });
    t.equal(res.status, 200, `request ${i} answered`);
  }
  t.equal(server.child.exitCode, null, 'still running');
  await exitsWithinGrace(t, server);
});

t.test('refresh: stdout closed while it runs: exits within the grace period', async (t) => {
  const c = await startRefresherCluster(t, { namespaces: [namespace('team-a', OPTED_IN)] });
  const dir = t.testdir({ 'config.yaml': `defaults: {pullSecret: ecr-credentials}\npullSecrets:\n  registries:\n    - host: ${EAST}\n` });
  await writeFile(join(dir, 'kubeconfig'), c.api.kubeconfig(REFRESHER_NAMESPACE, 'token'));
  const healthPort = await freePort();
  const child = spawn(
    process.execPath,
    [builtCli, 'refresh', '--config', join(dir, 'config.yaml'), '--kubeconfig', join(dir, 'kubeconfig'), '--metrics-port', '0',
      '--health-port', String(healthPort), '--metrics-host', '127.0.0.1', '--grace-period', String(GRACE_SECONDS)],
    {
      cwd: repositoryRoot,
      env: { PATH: process.env.PATH, ...c.aws.endpointEnv(), AWS_ACCESS_KEY_ID: STATIC_KEY, AWS_SECRET_ACCESS_KEY: 'static-secret', POD_NAMESPACE: REFRESHER_NAMESPACE, POD_NAME: 'replica-a' },
    },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.stdout.destroy();
  await until(() => c.secret('team-a') !== undefined, 'the refresher writes the Secret with its stdout gone', 20_000);
  await until(async () => (await getText(healthPort, '/readyz').catch(() => ({ status: 0 }))).status === 200, 'ready', 20_000);
  await exitsWithinGrace(t, { child, exited, stderr: () => stderr });
});
