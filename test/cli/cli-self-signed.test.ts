// The built binary in `--tls-mode self-signed` against the local Kubernetes API stand-in: it needs
// POD_NAMESPACE and an API to talk to; it elects itself, writes the Secret, publishes the caBundle,
// answers admissions over TLS that verifies against that bundle for the Service name, and on SIGTERM
// releases the Lease so the next replica does not wait for it to expire.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { httpsRequest } from '../helpers/https-client.js';
import { startServeProcess } from '../helpers/serve-process.js';
import { LEASES, NAMES, NAMESPACE, SERVICE_HOST, caBundles, secretData, startCluster, until } from '../helpers/self-signed-cluster.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const fixture = join(root, 'test/fixtures/default-job/review.json');
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KUBERNETES_') && !key.startsWith('POD_')));

t.test('serve --tls-mode self-signed says what it is missing', async (t) => {
  const args = [cli, 'serve', '--tls-mode', 'self-signed', '--namespaces', 'examples/namespaces.yaml'];
  const noNamespace = await run(process.execPath, args, { cwd: root, env: baseEnv }).catch((error: { code: number; stderr: string }) => error);
  t.match(noNamespace, { code: 64, stderr: /needs POD_NAMESPACE/ });
  const noApi = await run(process.execPath, args, { cwd: root, env: { ...baseEnv, POD_NAMESPACE: NAMESPACE } }).catch(
    (error: { code: number; stderr: string }) => error,
  );
  t.match(noApi, { code: 64, stderr: /needs the Kubernetes API: run in a Pod or pass --kubeconfig FILE/ });
});

t.test('serve --tls-mode self-signed: elected, publishes, serves verifiable TLS, releases the Lease on SIGTERM', async (t) => {
  const { api } = await startCluster(t);
  const dir = t.testdir();
  await writeFile(join(dir, 'kubeconfig'), api.kubeconfig(NAMESPACE));
  const server = await startServeProcess(
    t,
    ['--tls-mode', 'self-signed', '--kubeconfig', join(dir, 'kubeconfig'), '--namespaces', 'examples/namespaces.yaml', '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0'],
    { ...baseEnv, POD_NAMESPACE: NAMESPACE, POD_NAME: 'pod-cli' },
  );
  const port = server.port;
  await until(() => caBundles(api).length === 2 && caBundles(api).every((b) => b !== undefined), 'the caBundle to be published', 20_000);
  const bundle = Buffer.from(caBundles(api)[0]!, 'base64').toString('utf8');
  t.equal(bundle, secretData(api)!['ca-bundle.crt'], 'the published bundle is the one in the Secret');
  t.match(api.get(LEASES, NAMES.leaseName)!.spec, { holderIdentity: 'pod-cli' });

  // The listener may still present its placeholder for a moment: retry until the Secret's certificate is served.
  const body = await readFile(fixture, 'utf8');
  let status = 0;
  await until(
    async () => {
      status = await httpsRequest({ port, ca: bundle, servername: SERVICE_HOST, body }).then(
        (res) => res.status,
        () => 0,
      );
      return status === 200;
    },
    'an admission over TLS verified against the published bundle',
    20_000,
  );
  t.equal(status, 200);

  server.child.kill('SIGTERM');
  t.equal((await server.exited).code, 0, 'exit 0 after draining');
  t.notOk((api.get(LEASES, NAMES.leaseName)!.spec as { holderIdentity?: string }).holderIdentity, 'the Lease was released');
  t.notMatch(server.stdout(), /PRIVATE KEY/, 'no key material in the log');
});
