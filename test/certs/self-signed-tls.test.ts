// Self-signed mode against the local Kubernetes API stand-in: the elected leader creates the Secret
// and publishes the CA bundle into every webhook of its configuration; an edit to the configuration
// is corrected (watch); followers serve the same certificate without writing; a deleted Secret is put
// back with the same CA; the rotate annotation forces a new serving certificate.
import { X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import { caBundleOf } from '../../src/certs/generate.js';
import { loadConfig } from '../../src/files/config-file.js';
import { createLogger } from '../../src/log.js';
import { StaticNamespaceSource } from '../../src/webhook/namespace-labels.js';
import { startServer } from '../../src/http/server.js';
import { SelfSignedTls, type SelfSignedTlsOptions } from '../../src/certs/self-signed-tls.js';
import {
  LEASES,
  NAMES,
  NAMESPACE,
  RecordingMetrics,
  SECRETS,
  WEBHOOK_CONFIGS,
  caBundles,
  secretData,
  startCluster,
  until,
  type WebhookView,
} from '../helpers/self-signed-cluster.js';
import type { FakeKubeApi } from '../helpers/fake-kube-api.js';
import type { KubeConfig } from '@kubernetes/client-node';

const log = createLogger({ level: 'silent' });

async function replica(t: Test, kubeConfig: KubeConfig, identity: string, extra: Partial<SelfSignedTlsOptions> = {}) {
  const metrics = new RecordingMetrics();
  const tls = await SelfSignedTls.start({
    kubeConfig,
    namespace: NAMESPACE,
    ...NAMES,
    identity,
    log,
    metrics,
    resyncIntervalMs: 5_000,
    leaderElection: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 100 },
    ...extra,
  });
  t.teardown(() => tls.close());
  return { tls, metrics };
}

function published(api: FakeKubeApi): boolean {
  const data = secretData(api);
  if (!data) return false;
  const bundles = caBundles(api);
  return bundles.length === 2 && bundles.every((b) => b === caBundleOf(data['ca-bundle.crt']!));
}

t.test('the leader creates the Secret, publishes the bundle to every webhook, and corrects drift', async (t) => {
  const { api, kubeConfig } = await startCluster(t);
  const { tls, metrics } = await replica(t, kubeConfig, 'pod-a');
  await until(() => published(api), 'the Secret and the published caBundle');
  t.ok(tls.isLeader());
  t.equal(metrics.leader, true, 'leader status reported');
  const data = secretData(api)!;
  t.equal(data['ca-bundle.crt'], `${data['ca.crt']!.trim()}\n`, 'one CA in the bundle');
  await until(() => tls.current()?.cert === data['tls.crt'], 'the replica to serve the certificate from the Secret');
  t.equal(metrics.notAfter.get('ca')?.getTime(), new Date(new X509Certificate(data['ca.crt']!).validTo).getTime(), 'CA not-after reported');
  t.same(metrics.rotations, { serving: 1, ca: 1 });
  // The counter moves when the PATCH response arrives, a moment after the stand-in stored it.
  await until(() => metrics.caBundlePatches > 0, 'the patch to be counted');
  const patchesAfterStart = metrics.caBundlePatches;
  t.equal(patchesAfterStart, 1, 'one patch covered both webhooks');

  // Someone edits the configuration: a stale bundle in one webhook, and a setting of their own.
  const edited = api.get(WEBHOOK_CONFIGS, NAMES.webhookConfigName)! as unknown as WebhookView;
  edited.webhooks[1]!.clientConfig.caBundle = Buffer.from('stale').toString('base64');
  edited.webhooks[0]!.failurePolicy = 'Fail';
  api.put(WEBHOOK_CONFIGS, edited as never);
  await until(() => published(api) && metrics.caBundlePatches > patchesAfterStart, 'the caBundle to be corrected');
  t.equal(metrics.caBundlePatches, patchesAfterStart + 1, 'with one more patch');
  const after = api.get(WEBHOOK_CONFIGS, NAMES.webhookConfigName)! as unknown as WebhookView;
  t.equal(after.webhooks[0]!.failurePolicy, 'Fail', "the user's other edit is kept");
  t.ok(
    api.requests.some((r) => r.method === 'PATCH' && r.path === `${WEBHOOK_CONFIGS}/${NAMES.webhookConfigName}` && r.status === 200),
    'corrected with a PATCH',
  );
  t.notOk(api.requests.some((r) => r.method === 'PUT' && r.path.startsWith(WEBHOOK_CONFIGS)), 'never replaced whole');
});

t.test('a follower serves the leader\'s certificate and writes nothing', async (t) => {
  const { api, kubeConfig } = await startCluster(t);
  const a = await replica(t, kubeConfig, 'pod-a');
  await until(() => a.tls.isLeader() && published(api), 'pod-a to lead and publish');
  const secretWrites = () => api.requests.filter((r) => r.path.startsWith(SECRETS) && r.method !== 'GET').length;
  const writesBefore = secretWrites();
  const b = await replica(t, kubeConfig, 'pod-b');
  t.equal(b.tls.current()?.cert, secretData(api)!['tls.crt'], 'loaded at start, before serving');
  await b.tls.reconcile();
  t.notOk(b.tls.isLeader());
  t.equal(b.metrics.leader, false);
  t.equal(secretWrites(), writesBefore, 'the follower did not write the Secret');
  t.match(api.get(LEASES, NAMES.leaseName)!.spec, { holderIdentity: 'pod-a' });
});

t.test('a deleted Secret is put back with the same CA; without memory a new CA is made', async (t) => {
  const { api, kubeConfig } = await startCluster(t);
  const { tls } = await replica(t, kubeConfig, 'pod-a');
  await until(() => published(api) && tls.current() !== undefined, 'the first Secret');
  const before = secretData(api)!;
  const bundleBefore = caBundles(api)[0];

  api.remove(SECRETS, NAMES.secretName);
  await until(() => secretData(api) !== undefined, 'the Secret to be recreated');
  const restored = secretData(api)!;
  t.equal(restored['ca.crt'], before['ca.crt'], 'same CA');
  t.equal(restored['tls.crt'], before['tls.crt'], 'same serving certificate');
  t.equal(caBundles(api)[0], bundleBefore, 'the published bundle did not change');
  t.equal(tls.current()?.cert, before['tls.crt'], 'the replica kept serving throughout');

  // All replicas gone and the Secret deleted: the next leader has nothing to restore from.
  await tls.close();
  api.remove(SECRETS, NAMES.secretName);
  const { tls: fresh } = await replica(t, kubeConfig, 'pod-c');
  await until(() => published(api) && fresh.current() !== undefined, 'a new Secret and bundle');
  t.not(secretData(api)!['ca.crt'], before['ca.crt'], 'a new CA');
});

t.test('the rotate annotation forces a new serving certificate', async (t) => {
  const { api, kubeConfig } = await startCluster(t);
  const { tls, metrics } = await replica(t, kubeConfig, 'pod-a');
  await until(() => published(api) && tls.current() !== undefined, 'the first Secret');
  const before = secretData(api)!;
  const secret = api.get(SECRETS, NAMES.secretName)!;
  secret.metadata.annotations = { ...secret.metadata.annotations, 'buildkite-ecr-injector/rotate': 'serving', 'note.example.com/owner': 'ops' };
  api.put(SECRETS, secret);
  await until(() => tls.current()?.cert !== before['tls.crt'], 'a new serving certificate to be served');
  const after = api.get(SECRETS, NAMES.secretName)!;
  t.notOk(after.metadata.annotations?.['buildkite-ecr-injector/rotate'], 'the request is consumed');
  t.equal(after.metadata.annotations?.['note.example.com/owner'], 'ops', 'other annotations are kept');
  t.equal(secretData(api)!['ca.crt'], before['ca.crt'], 'same CA');
  t.equal(metrics.rotations.serving, 2);
});

t.test('a replica with no certificate yet answers probes but is not ready', async (t) => {
  const { api, kubeConfig } = await startCluster(t);
  // Someone else holds the Lease for an hour, so no Secret gets written.
  api.put(LEASES, {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: NAMES.leaseName, namespace: NAMESPACE },
    spec: { holderIdentity: 'pod-z', leaseDurationSeconds: 3600, renewTime: new Date().toISOString().replace('Z', '000Z') },
  });
  const server = await startServer({
    config: await loadConfig(undefined),
    log,
    host: '127.0.0.1',
    port: 0,
    namespaces: { source: new StaticNamespaceSource({}) },
    tls: {
      mode: 'self-signed',
      kubeConfig,
      namespace: NAMESPACE,
      ...NAMES,
      identity: 'pod-a',
      resyncIntervalMs: 5_000,
      leaderElection: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 100 },
    },
  });
  t.teardown(() => server.close());
  t.equal((await server.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  t.equal((await server.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, 'not ready without a certificate');
  t.equal(server.certificates.current(), undefined);

  api.remove(LEASES, NAMES.leaseName); // pod-z is gone
  await until(async () => (await server.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 'ready');
  t.equal(server.certificates.current()?.cert, secretData(api)!['tls.crt']);
});
