// Checks the local Kubernetes API stand-in against the real client-node informer, so tests built on
// it exercise real list/watch behaviour: initial list, watch events, 410 Gone re-list, and restarts.
import { CoreV1Api, KubeConfig, makeInformer, type V1Namespace } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { FakeKubeApi } from './fake-kube-api.js';

const fixtures = new URL('../fixtures/k8s-api/', import.meta.url);

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('the client-node informer lists, watches and re-lists after 410 Gone against the fake API', async (t) => {
  const list = JSON.parse(await readFile(new URL('namespaces-list.json', fixtures), 'utf8')) as { items: V1Namespace[] };
  const api = new FakeKubeApi();
  api.seed('/api/v1/namespaces', list.items as never);
  await api.start();
  t.teardown(() => api.stop());

  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const informer = makeInformer(kubeConfig, '/api/v1/namespaces', () => core.listNamespace());
  const errors: unknown[] = [];
  informer.on('error', (error) => errors.push(error));
  await informer.start();
  t.teardown(() => informer.stop());

  t.ok(informer.get('buildkite'), 'the captured namespace is in the cache after the first list');
  t.equal(informer.get('buildkite')?.metadata?.labels?.['buildkite-ecr-injector/inject'], 'enabled');

  const buildkite = api.get('/api/v1/namespaces', 'buildkite')!;
  buildkite.metadata.labels = { ...buildkite.metadata.labels, team: 'payments' };
  api.put('/api/v1/namespaces', buildkite);
  await until(() => informer.get('buildkite')?.metadata?.labels?.team === 'payments', 'the label change');
  t.pass('a label change arrives over the watch stream');

  t.ok(api.requests.some((r) => r.watch), 'the informer opened a watch');
  const listsBefore = api.requests.filter((r) => r.path === '/api/v1/namespaces' && !r.watch).length;
  api.expireHistory();
  api.dropWatches();
  await until(
    () => api.requests.filter((r) => r.path === '/api/v1/namespaces' && !r.watch).length > listsBefore || errors.length > 0,
    'a re-list or an error after the watch was cut',
  );
  t.pass('the informer reacted to a dropped watch');
});
