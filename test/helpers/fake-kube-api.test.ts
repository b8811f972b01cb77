// Checks the local Kubernetes API stand-in against the real client-node informer, so tests built on
// it exercise real list/watch behaviour: initial list, watch events, 410 Gone re-list, and restarts.
import { CoreV1Api, KubeConfig, Watch, makeInformer, type V1Namespace } from '@kubernetes/client-node';
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

t.test('Secrets across namespaces: label selectors on list and watch, selection changes as ADDED/DELETED, immutable type', async (t) => {
  const api = new FakeKubeApi();
  const managed = { 'app.kubernetes.io/managed-by': 'buildkite-ecr-injector' };
  const secret = (namespace: string, name: string, labels: Record<string, string> = {}) => ({
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name, namespace, labels }, data: {},
  });
  api.seed('/api/v1/namespaces/a/secrets', [secret('a', 'ecr-credentials', managed), secret('a', 'other')]);
  api.seed('/api/v1/namespaces/b/secrets', [secret('b', 'ecr-credentials', managed)]);
  await api.start();
  t.teardown(() => api.stop());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig('default', 'token-of-a-test'));
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const selector = 'app.kubernetes.io/managed-by=buildkite-ecr-injector';

  const list = await core.listSecretForAllNamespaces({ labelSelector: selector });
  t.same(list.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`).sort(), ['a/ecr-credentials', 'b/ecr-credentials'], 'a cluster-wide list with a selector');
  t.equal((await core.listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by!=buildkite-ecr-injector' })).items.length, 1, '!= selects the rest');
  t.equal((await core.listNamespacedSecret({ namespace: 'a', labelSelector: '!app.kubernetes.io/managed-by' })).items.length, 1, '!key');
  t.equal((await core.listNamespacedSecret({ namespace: 'a', labelSelector: 'app.kubernetes.io/managed-by in (x, buildkite-ecr-injector)' })).items.length, 1, 'in (...)');
  t.equal(api.requests.at(-1)?.authorization, 'Bearer token-of-a-test', 'requests record which client sent them');

  const events: string[] = [];
  const watch = new Watch(kubeConfig);
  const controller = await watch.watch('/api/v1/secrets', { labelSelector: selector, resourceVersion: list.metadata?.resourceVersion }, (type, object: { metadata: { namespace: string; name: string } }) => events.push(`${type} ${object.metadata.namespace}/${object.metadata.name}`), () => undefined);
  t.teardown(() => controller.abort());
  const other = api.get('/api/v1/namespaces/a/secrets', 'other')!;
  api.put('/api/v1/namespaces/a/secrets', { ...other, metadata: { ...other.metadata, labels: managed } });
  const inB = api.get('/api/v1/namespaces/b/secrets', 'ecr-credentials')!;
  api.put('/api/v1/namespaces/b/secrets', { ...inB, metadata: { ...inB.metadata, labels: {} } });
  api.put('/api/v1/namespaces/b/secrets', { ...inB, metadata: { ...inB.metadata, labels: { unrelated: 'x' } } });
  api.remove('/api/v1/namespaces/a/secrets', 'ecr-credentials');
  api.put('/api/v1/namespaces/c/secrets', secret('c', 'ecr-credentials', managed));
  await until(() => events.length >= 4, 'four watch events');
  t.same(events, ['ADDED a/other', 'DELETED b/ecr-credentials', 'DELETED a/ecr-credentials', 'ADDED c/ecr-credentials'], 'entering and leaving the selection; unselected changes are not sent');

  const current = await core.readNamespacedSecret({ namespace: 'c', name: 'ecr-credentials' });
  const changed = await core.replaceNamespacedSecret({ namespace: 'c', name: 'ecr-credentials', body: { ...current, type: 'Opaque' } }).catch((e: unknown) => e);
  t.match(changed, { code: 422 }, 'a Secret type cannot be changed');
  const stale = await core.deleteNamespacedSecret({ namespace: 'c', name: 'ecr-credentials', body: { preconditions: { resourceVersion: '1' } } }).catch((e: unknown) => e);
  t.match(stale, { code: 409 }, 'a delete with a stale resourceVersion precondition conflicts');
  await core.deleteNamespacedSecret({ namespace: 'c', name: 'ecr-credentials', body: { preconditions: { resourceVersion: current.metadata?.resourceVersion } } });
  t.equal(api.get('/api/v1/namespaces/c/secrets', 'ecr-credentials'), undefined, 'a current precondition deletes');
});
